"""rl_zoo3 glue: ``--algo sql``, the optuna sampler of SQL's hyperparameters, and the shipped yaml.

:func:`load_hyperparams` reads one entry of ``hyperparams/sql.yml`` (or of any rl_zoo3 yaml) as
algorithm keyword arguments, for scripts that train without the zoo. :func:`register` is called
by ``sb3_sql_zoo_hook`` right after each of ``rl_zoo3.utils``, ``rl_zoo3.hyperparams_opt`` and
``rl_zoo3.exp_manager`` has executed (see the documentation's rl_zoo3 guide), so that the
unmodified zoo knows SQL. The sampler follows rl_zoo3's ``sample_sac_params``:
it suggests raw values and :func:`convert_sql_params` turns them into SQL keyword arguments,
which is also what the zoo applies to a stored trial (``--trial-id``).
"""

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import yaml
from stable_baselines3.common.utils import LinearSchedule

from sb3_sql.sql import SQL

if TYPE_CHECKING:
    import optuna

ALGO = "sql"
# Hidden layers of the soft Q-function and of the sampler; "medium" is the reference code's 2 x 128.
NET_ARCH = {"small": [64, 64], "medium": [128, 128], "big": [256, 256]}


def default_hyperparams_path() -> Path:
    """The shipped ``hyperparams/sql.yml``: inside the installed package, or at the root of a source checkout.

    ``setup.py`` copies the repository's ``hyperparams/sql.yml`` into the package when it builds a
    wheel; an editable install or a checkout on ``PYTHONPATH`` uses the repository's file itself.

    :raises FileNotFoundError: if neither file exists (a broken installation).
    """
    package_dir = Path(__file__).resolve().parent
    candidates = (package_dir / "hyperparams" / "sql.yml", package_dir.parent / "hyperparams" / "sql.yml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"sb3_sql's hyperparameters are missing (looked for {', '.join(map(str, candidates))}): "
        "reinstall sb3-sql, or pass --conf-file to rl_zoo3."
    )


# Keys of an rl_zoo3 yaml entry that configure the zoo (environment, wrappers, budget), not the
# algorithm: ``rl_zoo3.exp_manager.ExperimentManager`` removes them before building the model.
ZOO_ONLY_KEYS = frozenset(
    {
        "n_timesteps",
        "policy",
        "n_envs",
        "normalize",
        "env_wrapper",
        "vec_env_wrapper",
        "frame_stack",
        "callback",
        "env_kwargs",
        "monitor_kwargs",
    }
)


def read_zoo_entry(env_id: str, path: str | Path | None = None) -> dict[str, Any]:
    """One entry of an rl_zoo3 hyperparameter yaml, as written (zoo-only keys included).

    :param env_id: the entry's name, a gymnasium id such as ``"Pendulum-v1"``.
    :param path: the yaml file; the shipped ``hyperparams/sql.yml`` (:func:`default_hyperparams_path`) by default.
    :return: the entry, e.g. ``{"n_timesteps": 20000, "policy": "MlpPolicy", "ent_coef": 0.03, ...}``.
    :raises KeyError: if the file has no entry for ``env_id`` (the message lists the entries).
    :raises FileNotFoundError: if ``path`` (or the shipped yaml) does not exist.
    """
    path = default_hyperparams_path() if path is None else Path(path)
    with open(path) as file:
        entries = yaml.safe_load(file)
    if env_id not in entries:
        raise KeyError(f"{path} has no entry for {env_id!r}; it has {', '.join(entries)}")
    return dict(entries[env_id])


def load_hyperparams(env_id: str, path: str | Path | None = None) -> dict[str, Any]:
    """The algorithm keyword arguments of one rl_zoo3 yaml entry, as ``python -m rl_zoo3.train`` would pass them.

    The keys in :data:`ZOO_ONLY_KEYS` are dropped, a ``policy_kwargs`` string (the zoo's
    convention, e.g. ``"dict(net_arch=[64, 64])"``) is evaluated, and a ``"lin_<initial>"``
    learning rate becomes a linear decay from ``<initial>`` to 0 over training, as the zoo reads it.
    The result can be passed to ``SQL("MlpPolicy", env_id, **load_hyperparams(env_id))``; it also
    reads the zoo's yaml of another algorithm (e.g. ``rl_zoo3/hyperparams/sac.yml``).

    :param env_id: the entry's name, a gymnasium id such as ``"Pendulum-v1"``.
    :param path: the yaml file; the shipped ``hyperparams/sql.yml`` by default.
    :return: keyword arguments for the algorithm's constructor.
    :raises KeyError: if the file has no entry for ``env_id``.
    :raises FileNotFoundError: if ``path`` (or the shipped yaml) does not exist.
    """
    kwargs = {key: value for key, value in read_zoo_entry(env_id, path).items() if key not in ZOO_ONLY_KEYS}
    if isinstance(kwargs.get("policy_kwargs"), str):
        kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"])  # the zoo's own convention, e.g. "dict(net_arch=[64])"
    if isinstance(kwargs.get("learning_rate"), str):
        initial = float(kwargs["learning_rate"].removeprefix("lin_"))
        kwargs["learning_rate"] = LinearSchedule(initial, 0.0, end_fraction=1.0)  # progress_remaining * initial
    return kwargs


def sample_sql_params(trial: "optuna.Trial", n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """Sampler for SQL hyperparameters, with rl_zoo3's sampler signature.

    Searched: the temperature ``ent_coef`` (log-uniform in [1e-3, 1], in reward units), the
    learning rate (log-uniform in [1e-5, 2e-3], SAC's range in the zoo), the batch size (32 to
    512), the value and kernel particles ``M`` and ``K``, the network size (:data:`NET_ARCH`) and
    the target update: a hard copy every 100, 1000 (reference) or 2000 gradient steps, or
    Polyak averaging every step with ``tau`` log-uniform in [1e-3, 0.08] (SAC's range in the zoo).

    :param trial: the optuna trial to suggest values with.
    :param n_actions: action dimension (unused; part of the zoo's signature).
    :param n_envs: number of environments (unused; part of the zoo's signature).
    :param additional_args: the zoo's extra information (unused: HER parameters are not searched).
    :return: SQL keyword arguments, see :func:`convert_sql_params`.
    """
    batch_size_pow = trial.suggest_int("batch_size_pow", 5, 9)
    sampled_params = {
        "ent_coef": trial.suggest_float("ent_coef", 1e-3, 1.0, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 2e-3, log=True),
        "batch_size_pow": batch_size_pow,
        "value_n_particles": trial.suggest_categorical("value_n_particles", [8, 16, 32, 64]),
        "kernel_n_particles": trial.suggest_categorical("kernel_n_particles", [8, 16, 32]),
        "net_arch": trial.suggest_categorical("net_arch", list(NET_ARCH)),
        "target_update": trial.suggest_categorical("target_update", ["hard", "polyak"]),
    }
    if sampled_params["target_update"] == "hard":
        sampled_params["target_update_interval"] = trial.suggest_categorical("target_update_interval", [100, 1000, 2000])
    else:
        sampled_params["tau"] = trial.suggest_float("tau", 1e-3, 0.08, log=True)
    trial.set_user_attr("batch_size", 2**batch_size_pow)
    return convert_sql_params(sampled_params)


def convert_sql_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """Turn the values suggested by :func:`sample_sql_params` (or a stored trial's params) into SQL kwargs.

    ``batch_size_pow`` becomes ``batch_size = 2 ** batch_size_pow``, ``net_arch`` a
    ``policy_kwargs["net_arch"]`` from :data:`NET_ARCH`, and ``target_update`` either
    ``tau=1.0`` with the sampled ``target_update_interval`` ("hard") or the sampled ``tau`` with
    ``target_update_interval=1`` ("polyak").

    :raises ValueError: for an unknown ``net_arch`` or ``target_update``.
    """
    hyperparams = dict(sampled_params)
    net_arch, target_update = hyperparams.pop("net_arch"), hyperparams.pop("target_update")
    if net_arch not in NET_ARCH:
        raise ValueError(f"Unknown net_arch {net_arch!r} for SQL: expected one of {list(NET_ARCH)}")
    if target_update not in ("hard", "polyak"):
        raise ValueError(f"Unknown target_update {target_update!r} for SQL: expected 'hard' or 'polyak'")
    hyperparams["batch_size"] = 2 ** hyperparams.pop("batch_size_pow")
    hyperparams["policy_kwargs"] = {"net_arch": NET_ARCH[net_arch]}
    if target_update == "hard":
        hyperparams["tau"] = 1.0
    else:
        hyperparams["target_update_interval"] = 1
    return hyperparams


def _default_to_shipped_hyperparams(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``ExperimentManager.__init__`` so that ``--algo sql`` without ``--conf-file`` reads the shipped yaml.

    The zoo's own default is ``hyperparams/<algo>.yml`` inside rl_zoo3, which has no ``sql.yml``.
    """
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        arguments = signature.bind(self, *args, **kwargs).arguments
        if arguments["algo"] == ALGO and arguments.get("config") is None:
            self.config = str(default_hyperparams_path())

    return __init__


def register(module: ModuleType) -> None:
    """Register SQL with one freshly executed rl_zoo3 module.

    - ``rl_zoo3.utils``: ``ALGOS["sql"] = SQL`` (the ``--algo`` choices of train and enjoy);
    - ``rl_zoo3.hyperparams_opt``: :func:`sample_sql_params` in ``HYPERPARAMS_SAMPLER`` and
      :func:`convert_sql_params` in ``HYPERPARAMS_CONVERTER`` (``-optimize``, ``--trial-id``);
    - ``rl_zoo3.exp_manager``: ``--algo sql`` without ``--conf-file`` reads
      :func:`default_hyperparams_path` instead of the zoo's missing ``hyperparams/sql.yml``.

    :param module: one of the modules above, right after it executed.
    :raises ValueError: for any other module.
    """
    if module.__name__ == "rl_zoo3.utils":
        module.ALGOS[ALGO] = SQL
    elif module.__name__ == "rl_zoo3.hyperparams_opt":
        module.HYPERPARAMS_SAMPLER[ALGO] = sample_sql_params
        module.HYPERPARAMS_CONVERTER[ALGO] = convert_sql_params
    elif module.__name__ == "rl_zoo3.exp_manager":
        manager = module.ExperimentManager
        manager.__init__ = _default_to_shipped_hyperparams(manager.__init__)
    else:
        raise ValueError(
            "sb3_sql.zoo.register() knows rl_zoo3.utils, rl_zoo3.hyperparams_opt and rl_zoo3.exp_manager, "
            f"got {module.__name__}"
        )

"""rl_zoo3 glue: ``--algo sql``, the optuna sampler of SQL's hyperparameters, and the shipped yaml.

:func:`register` is called by ``sb3_sql_zoo_hook`` right after each of ``rl_zoo3.utils``,
``rl_zoo3.hyperparams_opt`` and ``rl_zoo3.exp_manager`` has executed (see README, "rl_zoo3"),
so that the unmodified zoo knows SQL. The sampler follows rl_zoo3's ``sample_sac_params``:
it suggests raw values and :func:`convert_sql_params` turns them into SQL keyword arguments,
which is also what the zoo applies to a stored trial (``--trial-id``).
"""

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna

from sb3_sql.sql import SQL

ALGO = "sql"
# Hidden layers of the soft Q-function and of the sampler; "medium" is the reference (ALGORITHM.md section 7).
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


def sample_sql_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
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
            f"sb3_sql.zoo.register() knows rl_zoo3.utils, rl_zoo3.hyperparams_opt and rl_zoo3.exp_manager, got {module.__name__}"
        )

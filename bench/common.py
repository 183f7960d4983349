"""Shared pieces of the benchmark scripts: shipped hyperparameters and a training-throughput timer."""

import time
from pathlib import Path

import yaml
from stable_baselines3.common.callbacks import BaseCallback

HYPERPARAMS = Path(__file__).resolve().parent.parent / "hyperparams" / "sql.yml"
# Keys of an rl_zoo3 entry that are not algorithm keyword arguments.
ZOO_ONLY_KEYS = ("n_timesteps", "policy", "n_envs", "normalize", "env_wrapper", "frame_stack", "callback")


def zoo_kwargs(path: Path, env_id: str) -> dict:
    """Algorithm keyword arguments of one rl_zoo3 yaml entry (``policy_kwargs`` and ``lin_`` learning rates evaluated)."""
    with open(path) as file:
        entry = dict(yaml.safe_load(file)[env_id])
    kwargs = {key: value for key, value in entry.items() if key not in ZOO_ONLY_KEYS}
    if isinstance(kwargs.get("policy_kwargs"), str):
        kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"])  # the zoo's own convention, e.g. "dict(net_arch=[64])"
    if isinstance(kwargs.get("learning_rate"), str):
        # The zoo's "lin_<initial>": linear decay to 0, as rl_zoo3.train reads it.
        from rl_zoo3.utils import linear_schedule

        kwargs["learning_rate"] = linear_schedule(kwargs["learning_rate"].removeprefix("lin_"))
    return kwargs


def rl_zoo_kwargs(algo: str, env_id: str) -> dict:
    """SB3 ``algo``'s tuned hyperparameters for ``env_id`` as shipped with rl_zoo3 (e.g. ``"sac"``, ``"dqn"``)."""
    import rl_zoo3

    return zoo_kwargs(Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml", env_id)


class TrainingThroughput(BaseCallback):
    """Env-steps per second once learning has started (warm-up steps with random actions excluded)."""

    def _on_training_start(self) -> None:
        self.start = None

    def _on_step(self) -> bool:
        if self.start is None and self.model.num_timesteps > self.model.learning_starts:
            self.start, self.start_steps = time.perf_counter(), self.model.num_timesteps
        return True

    def _on_training_end(self) -> None:
        self.steps_per_second = (self.model.num_timesteps - self.start_steps) / (time.perf_counter() - self.start)

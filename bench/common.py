"""Shared pieces of the benchmark scripts: the algorithms compared, rl_zoo3's tuned hyperparameters of SB3's
algorithms and a throughput timer.

The scripts run as ``python bench/<script>.py``, which puts this folder on ``sys.path``; SQL's own
entries come from :func:`sb3_sql.zoo.load_hyperparams`.
"""

import time
from collections.abc import Callable
from pathlib import Path

from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from sb3_sql import SQL
from sb3_sql.zoo import load_hyperparams

ALGOS: dict[str, type[BaseAlgorithm]] = {"SQL": SQL, "SAC": SAC}
"""The algorithms the scripts compare, by the name they take on the command line."""


def rl_zoo_kwargs(algo: str, env_id: str) -> dict:
    """SB3 ``algo``'s tuned hyperparameters for ``env_id`` as shipped with rl_zoo3 (e.g. ``"sac"``, ``"dqn"``)."""
    import rl_zoo3

    return load_hyperparams(env_id, Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml")


class TrainingThroughput(BaseCallback):
    """Env-steps per second once learning has started (warm-up steps with random actions excluded).

    :param clock: ``time.perf_counter`` (wall time) or ``time.process_time`` (the CPU time of this
        process, less sensitive to other processes on a shared machine).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        super().__init__()
        self.clock = clock

    def _on_training_start(self) -> None:
        self.start = None

    def _on_step(self) -> bool:
        if self.start is None and self.model.num_timesteps > self.model.learning_starts:
            self.start, self.start_steps = self.clock(), self.model.num_timesteps
        return True

    def _on_training_end(self) -> None:
        self.steps_per_second = (self.model.num_timesteps - self.start_steps) / (self.clock() - self.start)

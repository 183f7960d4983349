"""Environments shipped with sb3_sql, registered with gymnasium when ``sb3_sql`` is imported.

- ``MultiGoal-v0``: :class:`MultiGoalEnv` (``sb3_sql.envs.multigoal``);
- ``TwoPassageMaze-v0``: :class:`TwoPassageMazeEnv` (``sb3_sql.envs.two_passage_maze``);
- ``FinishLineSwimmer-v0``: :class:`FinishLineSwimmerEnv` (``sb3_sql.envs.finish_line_swimmer``),
  registered only when MuJoCo is importable (``pip install gymnasium[mujoco]``).
"""

import gymnasium as gym

from sb3_sql.envs.multigoal import MAX_EPISODE_STEPS, MultiGoalEnv
from sb3_sql.envs.two_passage_maze import MAX_EPISODE_STEPS as MAZE_MAX_EPISODE_STEPS
from sb3_sql.envs.two_passage_maze import TwoPassageMazeEnv

# Re-importing (or another package registering the id first) must not replace the registration.
if "MultiGoal-v0" not in gym.registry:
    gym.register(id="MultiGoal-v0", entry_point="sb3_sql.envs.multigoal:MultiGoalEnv", max_episode_steps=MAX_EPISODE_STEPS)
if "TwoPassageMaze-v0" not in gym.registry:
    gym.register(
        id="TwoPassageMaze-v0",
        entry_point="sb3_sql.envs.two_passage_maze:TwoPassageMazeEnv",
        max_episode_steps=MAZE_MAX_EPISODE_STEPS,
    )

try:  # MuJoCo is optional (gymnasium[mujoco])
    from sb3_sql.envs.finish_line_swimmer import MAX_EPISODE_STEPS as SWIMMER_MAX_EPISODE_STEPS

    _HAS_MUJOCO = True
except (ImportError, gym.error.DependencyNotInstalled):  # the latter is no ImportError
    _HAS_MUJOCO = False
if _HAS_MUJOCO and "FinishLineSwimmer-v0" not in gym.registry:
    gym.register(
        id="FinishLineSwimmer-v0",
        entry_point="sb3_sql.envs.finish_line_swimmer:FinishLineSwimmerEnv",
        max_episode_steps=SWIMMER_MAX_EPISODE_STEPS,
    )

__all__ = ["MultiGoalEnv", "TwoPassageMazeEnv"]

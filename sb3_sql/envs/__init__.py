"""Environments shipped with sb3_sql, registered with gymnasium when ``sb3_sql`` is imported."""

import gymnasium as gym

from sb3_sql.envs.multigoal import MAX_EPISODE_STEPS, MultiGoalEnv

# Re-importing (or another package registering the id first) must not replace the registration.
if "MultiGoal-v0" not in gym.registry:
    gym.register(id="MultiGoal-v0", entry_point="sb3_sql.envs.multigoal:MultiGoalEnv", max_episode_steps=MAX_EPISODE_STEPS)

__all__ = ["MultiGoalEnv"]

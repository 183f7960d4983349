"""Evaluation episodes that keep the path of the point-mass environments (MultiGoal, the maze)."""

from typing import Any

import gymnasium as gym
import numpy as np


def rollout_paths(
    model: Any, env: gym.Env, n_episodes: int, seed: int = 0, deterministic: bool = False
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Play ``n_episodes`` episodes of ``model`` on ``env``, keeping each episode's observations.

    :param model: anything with SB3's ``predict(observation, deterministic=...)``.
    :param env: a gymnasium environment (closed at the end).
    :param n_episodes: number of episodes.
    :param seed: seed of the first reset (the following resets continue its random stream).
    :param deterministic: passed to ``predict``.
    :return: the ``info`` of each episode's last step, and the paths, one ``[steps + 1, *obs_shape]``
        array of observations each.
    :raises ValueError: if ``n_episodes < 1``.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    final_infos: list[dict[str, Any]] = []
    paths: list[np.ndarray] = []
    observation, _ = env.reset(seed=seed)
    for _ in range(n_episodes):
        path, terminated, truncated = [observation], False, False
        info: dict[str, Any] = {}
        while not (terminated or truncated):
            action, _ = model.predict(observation, deterministic=deterministic)
            observation, _, terminated, truncated, info = env.step(action)
            path.append(observation)
        final_infos.append(info)
        paths.append(np.array(path))
        observation, _ = env.reset()
    env.close()
    return final_infos, paths

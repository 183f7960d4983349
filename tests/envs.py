"""Small environments shared by the tests."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class OneStateEnv(gym.Env):
    """One observation (0) and an action box ``[-1, 1]^action_dim``; every episode is one step of reward 0.

    The tests train the sampler against a fixed energy or check a soft value in it.
    """

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, action_dim: int = 1):
        self.action_space = spaces.Box(-1.0, 1.0, (action_dim,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 0.0, True, False, {}

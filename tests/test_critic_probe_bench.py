"""bench/critic_probe.py: the discounted return to the episode's end, and the minimum over the critics."""

import runpy
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC

from sb3_sql import SQL

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "critic_probe.py"
# As `python bench/critic_probe.py` does, the script's folder is on sys.path (for bench/common.py).
sys.path.insert(0, str(SCRIPT.parent))
try:
    BENCH = runpy.run_path(str(SCRIPT))
finally:
    sys.path.remove(str(SCRIPT.parent))


class ConstantQ(th.nn.Module):
    """A Q-network stand-in on ``[features, actions]`` that returns ``value``, shape ``[n, 1]``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, q_input: th.Tensor) -> th.Tensor:
        return th.full((q_input.shape[0], 1), self.value)


def test_discounted_returns_to_the_end() -> None:
    # G_2 = 3, G_1 = 2 + 0.5 * 3, G_0 = 1 + 0.5 * 3.5
    np.testing.assert_allclose(BENCH["discounted_returns"](np.array([1.0, 2.0, 3.0]), 0.5), [2.75, 3.5, 3.0])


@pytest.fixture(scope="module")
def twin_model() -> SQL:
    return SQL("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(n_critics=2, net_arch=[8]), seed=0)


def test_critic_values_take_the_minimum_of_the_critics(twin_model: SQL) -> None:
    twin_model.critic.q_networks = th.nn.ModuleList([ConstantQ(5.0), ConstantQ(3.0)])
    observations = np.zeros((4, 3), dtype=np.float32)
    actions = np.zeros((4, 1), dtype=np.float32)
    np.testing.assert_allclose(BENCH["critic_values"](twin_model, observations, actions), [3.0] * 4)


def test_play_records_one_row_per_step(twin_model: SQL) -> None:
    run = BENCH["play"](twin_model, gym.make("Pendulum-v1"), seed=0, deterministic=False)
    assert len(run["observations"]) == len(run["actions"]) == len(run["rewards"]) == 200  # the time limit
    assert not run["terminated"]
    assert np.all(np.abs(run["actions"]) <= 1.0)  # the policy's scale, Pendulum's torques are [-2, 2]


@pytest.mark.parametrize(("ent_coef", "expected"), [(0.2, 0.2), ("auto_0.5", 0.5)])
def test_sac_temperature_is_the_fixed_or_the_learnt_one(ent_coef, expected) -> None:
    model = SAC("MlpPolicy", "Pendulum-v1", ent_coef=ent_coef, device="cpu")
    assert BENCH["sac_temperature"](model) == pytest.approx(expected)

"""bench/fidelity.py: its exact references, the contextual and unequal-width targets, and the scores."""

import math
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch as th

from sb3_sql import SQL

BENCH = runpy.run_path(str(Path(__file__).resolve().parent.parent / "bench" / "fidelity.py"))
TARGETS, CONTEXTUAL = BENCH["TARGETS"], BENCH["CONTEXTUAL_TARGETS"]["rotating_bumps"]


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_unequal_widths_exact_masses_are_one_to_four(alpha):
    """Equal heights, widths 0.04 and 0.16: the masses are in the ratio of the widths at any temperature."""
    modes = BENCH["exact_reference"](TARGETS["unequal_widths"], alpha)["modes"]
    assert modes["narrow"] == pytest.approx(0.2, abs=0.002)
    assert modes["wide"] == pytest.approx(0.8, abs=0.002)


def test_best_q_is_the_peak_of_four_sharp_modes():
    assert BENCH["best_q"](TARGETS["four_modes"]) == pytest.approx(math.log(0.25 / (2 * math.pi * 0.01)), abs=1e-3)


def test_rotating_bumps_move_and_reweight_with_the_state():
    states = [0.0, 0.5]
    exact = {s: BENCH["contextual_exact"](CONTEXTUAL, 0.25, s) for s in states}
    for s in states:
        assert exact[s]["modes"].sum() == pytest.approx(1.0, abs=1e-6)
        assert exact[s]["hist"].sum() == pytest.approx(1.0, abs=1e-6)
    # At s = 0.5 bump 0 is the highest (1 + 0.5 sin(pi / 2)); at s = 0 bump 1 is.
    assert exact[0.5]["modes"].argmax() == 0 and exact[0.0]["modes"].argmax() == 1
    centres = CONTEXTUAL.centres(th.tensor([[0.0], [0.5]], dtype=th.float64))  # [2, 3, 2]
    np.testing.assert_allclose(centres.norm(dim=-1).numpy(), 0.55)
    turned = th.atan2(centres[1, 0, 1], centres[1, 0, 0]) - th.atan2(centres[0, 0, 1], centres[0, 0, 0])
    assert float(turned) == pytest.approx(math.pi / 6)


def test_contextual_scores_of_exact_draws_are_near_zero_and_of_one_mode_are_not():
    state = 0.5
    exact = BENCH["contextual_exact"](CONTEXTUAL, 0.25, state)
    points, density = exact["grid"]
    rng = np.random.default_rng(0)
    flat = points.reshape(-1, 2)
    cells = rng.choice(len(flat), size=20_000, p=density.ravel() / density.sum())
    tv, mode_error = BENCH["contextual_scores"](CONTEXTUAL, exact, state, flat[cells])
    assert tv < 0.04 and mode_error < 0.01
    one_mode = CONTEXTUAL.centres(th.tensor([state], dtype=th.float64))[0].numpy() + 0.05 * rng.standard_normal((20_000, 2))
    tv, mode_error = BENCH["contextual_scores"](CONTEXTUAL, exact, state, one_mode)
    assert tv > 0.3 and mode_error > 0.2


def test_contextual_bandit_rewards_the_q_of_its_state():
    env = BENCH["ContextualBandit"](CONTEXTUAL.q)
    state, _ = env.reset(seed=0)
    action = np.array([0.2, -0.3], np.float32)
    _, reward, terminated, _, _ = env.step(action)
    expected = CONTEXTUAL.q(th.as_tensor(state, dtype=th.float64), th.as_tensor(action, dtype=th.float64))
    assert terminated and reward == pytest.approx(float(expected))
    assert {float(env.reset()[0][0]) for _ in range(5)} != {float(state[0])}  # a new state per episode


def test_contextual_analytic_q_reads_the_state_from_the_critic_input():
    model = SQL("MlpPolicy", BENCH["ContextualBandit"](CONTEXTUAL.q), ent_coef=0.25, seed=0, policy_kwargs={"net_arch": [8]})
    model.critic.q_networks = th.nn.ModuleList([BENCH["ContextualAnalyticQ"](CONTEXTUAL.q)])
    observations = th.tensor([[-0.5], [0.5]])
    actions = th.tensor([[[0.55, 0.0]], [[0.55, 0.0]]])  # [2, 1, 2]
    values = model.policy.particle_q_values(model.critic, observations, actions)
    expected = CONTEXTUAL.q(observations.double().unsqueeze(1), actions.double())
    th.testing.assert_close(values.double(), expected, atol=1e-5, rtol=0)
    assert not th.isclose(values[0, 0], values[1, 0])

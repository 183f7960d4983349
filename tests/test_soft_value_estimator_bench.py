"""bench/soft_value_estimator.py's estimators against soft values known in closed form.

A tiny SQL model on a one-state task with a 3-D action box; its target critic is replaced by
analytic soft Q-functions: a constant ``c`` (soft value ``c + alpha * D * log 2`` for any number of
draws, Eq. 10) and a separable quadratic ``-k * sum_d a_d^2`` over the free coordinates, whose
partition function is ``(sqrt(pi * alpha / k) * erf(sqrt(k / alpha)))^D``.
"""

import math
import runpy
from argparse import Namespace
from pathlib import Path

import pytest
import torch as th
from envs import OneStateEnv

from sb3_sql import SQL
from sb3_sql.policies import SVGDPolicy

BENCH = runpy.run_path(str(Path(__file__).resolve().parent.parent / "bench" / "soft_value_estimator.py"))
ALPHA = 0.5


class AnalyticQ(th.nn.Module):
    """A Q-network stand-in on ``[features, actions]``: ``offset - curvature * sum_{d < free} a_d^2``, ``[..., 1]``."""

    def __init__(self, offset: float, curvature: float, free: int):
        super().__init__()
        self.offset, self.curvature, self.free = offset, curvature, free

    def forward(self, q_input: th.Tensor) -> th.Tensor:
        actions = q_input[..., -3:]
        return (self.offset - self.curvature * actions[..., : self.free].pow(2).sum(-1)).unsqueeze(-1)


@pytest.fixture(scope="module")
def model():
    th.manual_seed(0)
    return SQL("MlpPolicy", OneStateEnv(3), policy_kwargs={"net_arch": [8]}, ent_coef=ALPHA, seed=0)


def with_critic(model, q_net):
    model.critic_target.q_networks = [q_net]  # particle_q_values reads this list
    return model


def args(**kwargs):
    return Namespace(**{"fit_particles": 16, "mix_uniform": 0.25, "m": 16, "repeats": 4, "m_ref": 2**14, **kwargs})


def states(n=4):
    obs = th.zeros(n, 1)
    return obs, 2 * th.rand(n, 3) - 1


@pytest.mark.parametrize("dim", [1, 3])
def test_constant_q_exact_for_any_m(model, dim):
    obs, fixed = states()
    q_fn = BENCH["FixedStateQ"](with_critic(model, AnalyticQ(1.5, 0.0, 3)).critic_target, obs, fixed, dim)
    assert not q_fn.fast  # the stand-in goes through particle_q_values
    for m in (1, 16):
        value = BENCH["uniform_soft_value"](q_fn, 4, dim, m, ALPHA)
        assert th.allclose(value, th.full((4,), 1.5 + ALPHA * dim * math.log(2)), atol=1e-5)
        log_z, ess = BENCH["log_partition"](q_fn, BENCH["uniform_draws"](4, dim), m, ALPHA)
        assert th.allclose(ALPHA * log_z, value, atol=1e-5) and th.allclose(ess, th.full((4,), float(m)))


@pytest.mark.parametrize("proposal", ["uniform", "gaussian", "kde"])
def test_quadratic_q_large_m_matches_closed_form(model, proposal):
    dim, curvature = 3, 2.0
    exact = dim * math.log(math.sqrt(math.pi * ALPHA / curvature) * math.erf(math.sqrt(curvature / ALPHA)))
    obs, fixed = states()
    model = with_critic(model, AnalyticQ(0.0, curvature, dim))
    q_fn = BENCH["FixedStateQ"](model.critic_target, obs, fixed, dim)
    log_z, _ = BENCH["log_partition"](q_fn, BENCH["make_draws"](model, obs, dim, proposal, args()), 2**14, ALPHA)
    assert th.allclose(log_z, th.full((4,), exact), atol=0.05)


def test_fast_critic_path_matches_particle_q_values():
    th.manual_seed(1)
    model = SQL("MlpPolicy", OneStateEnv(3), policy_kwargs={"net_arch": [8, 8], "n_critics": 2}, seed=1)
    obs, fixed = th.randn(5, 1), 2 * th.rand(5, 3) - 1
    free = 2 * th.rand(5, 7, 2) - 1
    q_fn = BENCH["FixedStateQ"](model.critic_target, obs, fixed, 2)
    assert q_fn.fast
    full = th.cat([free, fixed[:, None, 2:].expand(-1, 7, -1)], dim=-1)
    assert th.allclose(q_fn(free), SVGDPolicy.particle_q_values(model.critic_target, obs, full), atol=1e-5)


def test_measure_batch_reports_errors(model):
    model = with_critic(model, AnalyticQ(0.0, 2.0, 3))
    obs, fixed = states()
    options = args(proposals=["uniform", "particles"], m_ref=2**12)
    results = BENCH["measure_batch"](model, obs, fixed, 2, ALPHA, options)
    assert results["uniform"].shape == (4, 4) and results["particles"].shape == (4, 4)
    stats = BENCH["summarize"](results, "uniform")
    gaps = ("uniform_ref_half_gap_nats", "gaussian_ref_half_gap_nats", "gaussian_minus_uniform_ref_nats")
    assert all(abs(stats[key]) < 0.05 for key in gaps)
    assert abs(stats["bias_nats"] - stats["bias_gaussian_ref_nats"]) < 0.05 and stats["bias_spread_gaussian_ref_nats"] >= 0
    assert math.isfinite(stats["rmse_nats"]) and stats["rmse_nats"] >= abs(stats["bias_nats"]) - 1e-6


def test_sql_proposal_is_the_library_estimate_at_full_dimension(model):
    dim, curvature = 3, 2.0
    exact = dim * math.log(math.sqrt(math.pi * ALPHA / curvature) * math.erf(math.sqrt(curvature / ALPHA)))
    model = with_critic(model, AnalyticQ(0.0, curvature, dim))
    obs, fixed = states()
    value = BENCH["sql_soft_value"](model, obs, ALPHA, args(m=2**14))  # [4, 1]
    assert th.allclose(value.squeeze(-1) / ALPHA, th.full((4,), exact), atol=0.05)
    options = args(proposals=["sql"], m_ref=2**10)
    assert BENCH["measure_batch"](model, obs, fixed, 3, ALPHA, options)["sql"].shape == (4, 4)
    assert "sql" not in BENCH["measure_batch"](model, obs, fixed, 2, ALPHA, options)  # SQL integrates over all D


def test_sql_proposal_draws_as_the_gaussian_proposal(model):
    # Same seed, same draws: the bench's gaussian estimate at D = dim A is SQL's value_proposal="sampler".
    model = with_critic(model, AnalyticQ(0.3, 2.0, 3))
    obs, fixed = states()
    options = args(fit_particles=32)
    th.manual_seed(3)
    q_fn = BENCH["FixedStateQ"](model.critic_target, obs, fixed, 3)
    bench, _ = BENCH["log_partition"](q_fn, BENCH["make_draws"](model, obs, 3, "gaussian", options), 16, ALPHA)
    th.manual_seed(3)
    library = BENCH["sql_soft_value"](model, obs, ALPHA, options).squeeze(-1) / ALPHA
    assert th.allclose(bench, library, atol=1e-5)

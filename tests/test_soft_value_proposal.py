"""The soft value importance sampled from the sampler's defensive mixture (``value_proposal="sampler"``).

The library's estimate (``SVGDPolicy.soft_value``) on a one-state task with a 2-D action box, its
target critic replaced by an analytic soft Q-function whose soft value is computed by quadrature.
"""

import math

import numpy as np
import pytest
import torch as th
from envs import OneStateEnv

from sb3_sql import SQL
from sb3_sql.compose import compose
from sb3_sql.soft_value import (
    SquashedGaussianProposal,
    defensive_mixture_log_density,
    importance_sampled_soft_value,
    importance_sampled_soft_value_with_proposal,
    n_uniform_draws,
)

ALPHA = 0.5


def soft_q(actions: th.Tensor) -> th.Tensor:
    """A soft Q-function peaked off the centre of the box, with a cross term: ``[..., 2] -> [...]``."""
    return -2.0 * (actions[..., 0] - 0.5) ** 2 - (actions[..., 1] + 0.3) ** 2 + 0.8 * actions[..., 0] * actions[..., 1]


class AnalyticQ(th.nn.Module):
    """A Q-network stand-in on ``[features, actions]``: :func:`soft_q` of the actions, ``[..., 1]``."""

    def forward(self, q_input: th.Tensor) -> th.Tensor:
        return soft_q(q_input[..., -2:]).unsqueeze(-1)


def quadrature_soft_value() -> float:
    """``alpha * log integral_{[-1, 1]^2} exp(Q / alpha) da`` by the trapezoid rule on an 801 x 801 grid."""
    n_grid = 801
    grid = th.linspace(-1, 1, n_grid, dtype=th.float64)
    mesh = th.stack(th.meshgrid(grid, grid, indexing="ij"), dim=-1)
    weights = th.full((n_grid,), 2 / (n_grid - 1), dtype=th.float64)
    weights[[0, -1]] /= 2
    integral = (th.exp(soft_q(mesh) / ALPHA) * weights[:, None] * weights[None, :]).sum()
    return ALPHA * math.log(integral.item())


@pytest.fixture(scope="module")
def model():
    th.manual_seed(0)
    model = SQL("MlpPolicy", OneStateEnv(2), policy_kwargs={"net_arch": [8]}, ent_coef=ALPHA, seed=0, device="cpu")
    model.critic_target.q_networks = [AnalyticQ()]  # particle_q_values reads this list
    return model


def sampler_soft_value(model, n_states, n_particles, uniform_share=0.25):
    observations = th.zeros(n_states, 1)
    value = model.policy.soft_value(
        model.critic_target, observations, ALPHA, n_particles, proposal="sampler", uniform_share=uniform_share
    )
    return value.squeeze(-1).double()  # [n_states]


def test_large_m_matches_quadrature(model):
    th.manual_seed(1)
    value = sampler_soft_value(model, 2, 2**17)
    assert th.allclose(value, th.full((2,), quadrature_soft_value(), dtype=th.float64), atol=5e-3)


def test_exp_of_the_estimate_is_unbiased(model):
    # 2^15 independent M = 16 estimates of the partition function exp(V / alpha): their mean is within
    # four standard errors of the integral; V itself is biased downwards (Jensen).
    th.manual_seed(2)
    ratios = th.exp((sampler_soft_value(model, 2**15, 16) - quadrature_soft_value()) / ALPHA)
    standard_error = ratios.std() / math.sqrt(len(ratios))
    assert abs(ratios.mean().item() - 1) < 4 * standard_error.item()
    assert standard_error < 0.01
    assert th.log(ratios).mean() < 0


def test_fitted_density_integrates_to_one_on_the_box():
    # The tanh-squashed Gaussian's density in action space (the Jacobian included), by the trapezoid rule.
    th.manual_seed(3)
    particles = th.randn(1, 32, 2, dtype=th.float64) * th.tensor([0.6, 1.2], dtype=th.float64) + 0.3
    proposal = SquashedGaussianProposal(particles)
    grid = th.linspace(-1 + 1e-4, 1 - 1e-4, 1001, dtype=th.float64)
    mesh = th.stack(th.meshgrid(grid, grid, indexing="ij"), dim=-1).reshape(1, -1, 2)
    step = (grid[1] - grid[0]).item()
    mass = proposal.log_density(mesh).exp().sum() * step**2
    assert abs(mass.item() - 1) < 5e-3


def test_uniform_density_gives_the_uniform_estimator():
    generator = th.Generator().manual_seed(4)
    q_values = th.randn(6, 16, generator=generator, dtype=th.float64) * 3
    for action_dim in (1, 17):
        log_uniform = defensive_mixture_log_density(th.randn(6, 16, dtype=th.float64), action_dim, uniform_share=1.0)
        assert th.equal(log_uniform, th.full((6, 16), -action_dim * math.log(2), dtype=th.float64))
        th.testing.assert_close(
            importance_sampled_soft_value_with_proposal(q_values, log_uniform, ALPHA),
            importance_sampled_soft_value(q_values, ALPHA, action_dim),
            rtol=0,
            atol=1e-12,
        )


def test_uniform_share_one_reproduces_the_uniform_estimate(model):
    observations = th.zeros(3, 1)
    th.manual_seed(5)
    uniform = model.policy.soft_value(model.critic_target, observations, ALPHA, 16)
    th.manual_seed(5)
    sampler = model.policy.soft_value(model.critic_target, observations, ALPHA, 16, proposal="sampler", uniform_share=1.0)
    assert th.equal(uniform, sampler)


@pytest.mark.parametrize(
    "n_particles, uniform_share, n_uniform", [(16, 0.25, 4), (16, 1.0, 16), (2, 0.25, 1), (1, 0.1, 1), (64, 0.5, 32)]
)
def test_uniform_draws_count_at_least_one(n_particles, uniform_share, n_uniform):
    assert n_uniform_draws(n_particles, uniform_share) == n_uniform


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"value_proposal": "gaussian"}, r"value_proposal must be one of \('uniform', 'sampler'\), got 'gaussian'"),
        ({"value_proposal_uniform_share": 0.0}, r"value_proposal_uniform_share .* must be in \(0, 1\], got 0.0"),
        ({"value_proposal_uniform_share": 1.5}, r"must be in \(0, 1\], got 1.5"),
        ({"value_proposal_uniform_share": float("nan")}, r"must be in \(0, 1\], got nan"),
    ],
)
def test_invalid_value_proposals_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SQL("MlpPolicy", "Pendulum-v1", **kwargs)


def test_policy_and_mixture_refuse_invalid_proposals(model):
    with pytest.raises(ValueError, match="proposal must be one of"):
        model.policy.soft_value(model.critic_target, th.zeros(1, 1), ALPHA, 16, proposal="kde")
    with pytest.raises(ValueError, match=r"uniform_share must be in \(0, 1\], got 0"):
        defensive_mixture_log_density(th.zeros(4), 2, uniform_share=0)


def test_discrete_actions_ignore_the_proposal():
    # As the kernel settings: accepted, unused (the soft value of a discrete action space is exact).
    model = SQL("MlpPolicy", "CartPole-v1", value_proposal="sampler", policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    observations = th.randn(4, 4)
    exact = model.policy.soft_value(model.critic_target, observations, ALPHA)
    assert th.equal(model.policy.soft_value(model.critic_target, observations, ALPHA, proposal="sampler"), exact)


def test_short_pendulum_run_save_load_and_compose(tmp_path):
    kwargs = {"learning_starts": 100, "batch_size": 32, "policy_kwargs": {"net_arch": [32, 32]}, "seed": 0}
    model = SQL("MlpPolicy", "Pendulum-v1", value_proposal="sampler", value_proposal_uniform_share=0.5, **kwargs)
    model.learn(300)
    logged = model.logger.name_to_value
    assert all(np.isfinite(logged[key]) for key in ("train/critic_loss", "train/actor_loss", "train/soft_value"))

    # The soft Q target uses the setting: the same draws as the policy's sampler proposal.
    replay_data = model.replay_buffer.sample(8)
    th.manual_seed(6)
    _, next_soft_value = model.soft_q_target(replay_data, 0.1)
    th.manual_seed(6)
    expected = model.policy.soft_value(
        model.critic_target, replay_data.next_observations, 0.1, 16, proposal="sampler", uniform_share=0.5
    )
    assert th.equal(next_soft_value, expected)

    model.save(tmp_path / "sampler.zip")
    loaded = SQL.load(tmp_path / "sampler.zip")
    assert (loaded.value_proposal, loaded.value_proposal_uniform_share) == ("sampler", 0.5)
    composed = compose([model], gradient_steps=1)
    assert (composed.value_proposal, composed.value_proposal_uniform_share) == ("sampler", 0.5)

    # A model saved before the option existed loads with the paper's uniform proposal.
    del model.value_proposal, model.value_proposal_uniform_share
    model.save(tmp_path / "old.zip")
    old = SQL.load(tmp_path / "old.zip")
    assert (old.value_proposal, old.value_proposal_uniform_share) == ("uniform", 0.25)

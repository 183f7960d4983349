import math

import pytest
import torch as th
from hypothesis import given
from hypothesis import strategies as st

from sb3_sql.soft_value import exact_soft_value, importance_sampled_soft_value, soft_double_q_value

from strategies import PROPERTY_SETTINGS


@pytest.mark.parametrize("action_dim", [1, 3])
@pytest.mark.parametrize("alpha", [0.05, 1.0, 7.0])
def test_constant_q_is_exact(action_dim, alpha):
    q_values = th.full((5, 16), -3.25, dtype=th.float64)
    value = importance_sampled_soft_value(q_values, alpha, action_dim)
    assert value.shape == (5,)
    th.testing.assert_close(value, th.full((5,), -3.25 + alpha * action_dim * math.log(2), dtype=th.float64))


def test_converges_to_the_integral():
    # Q(a) = sin(3 a_0) + a_1^2 - a_0 a_1 on [-1, 1]^2; alpha * log integral exp(Q / alpha) by quadrature.
    alpha = 0.5

    def soft_q(actions):
        return th.sin(3 * actions[..., 0]) + actions[..., 1] ** 2 - actions[..., 0] * actions[..., 1]

    n_grid = 801
    grid = th.linspace(-1, 1, n_grid, dtype=th.float64)
    mesh = th.stack(th.meshgrid(grid, grid, indexing="ij"), dim=-1)
    weights = th.full((n_grid,), 2 / (n_grid - 1), dtype=th.float64)
    weights[[0, -1]] /= 2  # trapezoid rule
    integral = (th.exp(soft_q(mesh) / alpha) * weights[:, None] * weights[None, :]).sum()
    exact = alpha * th.log(integral).item()

    generator = th.Generator().manual_seed(0)
    errors = []
    for n_particles in (16, 200_000):
        actions = 2 * th.rand(n_particles, 2, dtype=th.float64, generator=generator) - 1
        value = importance_sampled_soft_value(soft_q(actions)[None], alpha, action_dim=2)
        errors.append(abs(value.item() - exact))
    assert errors[1] < 5e-3
    assert errors[1] < errors[0]


@PROPERTY_SETTINGS
@given(
    st.integers(1, 8),
    st.integers(1, 64),
    st.integers(1, 10),
    st.floats(-1e3, 1e3),
    st.floats(-3, 3),
    st.integers(0, 2**31 - 1),
)
def test_soft_value_is_bounded_by_mean_and_max_and_exact_for_constant_q(
    batch, n_particles, action_dim, level, log_alpha, seed
):
    alpha = 10.0**log_alpha
    generator = th.Generator().manual_seed(seed)
    q_values = level + 10.0 * th.randn(batch, n_particles, dtype=th.float64, generator=generator)
    value = importance_sampled_soft_value(q_values, alpha, action_dim)
    assert value.shape == (batch,) and th.isfinite(value).all()
    # Jensen: mean Q <= alpha log mean exp(Q / alpha) <= max Q, plus the log-volume alpha D log 2 of [-1, 1]^D.
    volume = alpha * action_dim * math.log(2)
    tolerance = 1e-9 * (abs(level) + 10 + volume)
    assert (value >= q_values.mean(dim=-1) + volume - tolerance).all()
    assert (value <= q_values.max(dim=-1).values + volume + tolerance).all()
    # Shifting Q shifts the value; a constant Q gives its value exactly.
    th.testing.assert_close(importance_sampled_soft_value(q_values + 7.5, alpha, action_dim), value + 7.5)
    constant = importance_sampled_soft_value(th.full_like(q_values, level), alpha, action_dim)
    th.testing.assert_close(constant, th.full_like(constant, level + volume))


def test_exact_soft_value_is_alpha_log_sum_exp():
    q_values = th.tensor([[1.0, 2.0, -0.5], [0.0, 0.0, 0.0]], dtype=th.float64)
    alpha = 0.7
    expected = [alpha * math.log(sum(math.exp(q / alpha) for q in row)) for row in q_values.tolist()]
    th.testing.assert_close(exact_soft_value(q_values, alpha), th.tensor(expected, dtype=th.float64))
    # The soft value is the policy's expected Q plus alpha times its entropy (the maximum-entropy objective).
    policy = th.distributions.Categorical(logits=q_values / alpha)
    th.testing.assert_close(exact_soft_value(q_values, alpha), (policy.probs * q_values).sum(-1) + alpha * policy.entropy())


def test_exact_soft_value_tends_to_the_max():
    q_values = th.tensor([[1.0, 2.0, -0.5]], dtype=th.float64)
    th.testing.assert_close(exact_soft_value(q_values, 1e-4), th.tensor([2.0], dtype=th.float64))


def test_soft_double_q_value():
    generator = th.Generator().manual_seed(0)
    q_1, q_2 = th.randn(2, 6, 4, dtype=th.float64, generator=generator)
    alpha = 0.3
    # Equal critics: the exact soft value.
    th.testing.assert_close(soft_double_q_value(q_1, q_1, alpha), exact_soft_value(q_1, alpha))
    # E_{pi_1}[Q_2 - alpha log pi_1], the first critic's policy evaluated by the second.
    policy_1 = th.distributions.Categorical(logits=q_1 / alpha)
    expected = (policy_1.probs * q_2).sum(-1) + alpha * policy_1.entropy()
    th.testing.assert_close(soft_double_q_value(q_1, q_2, alpha), expected)
    # As alpha -> 0: Q_2 at the argmax of Q_1 (double Q-learning).
    th.testing.assert_close(soft_double_q_value(q_1, q_2, 1e-6), q_2.gather(1, q_1.argmax(1, keepdim=True)).squeeze(1))

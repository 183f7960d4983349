import math

import pytest
import torch as th

from sb3_sql.soft_value import importance_sampled_soft_value


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

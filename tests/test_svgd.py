"""Plain SVGD (no RL) with the project's kernel and Stein direction."""

import math

import pytest
import torch as th
from hypothesis import given
from hypothesis import strategies as st

from sb3_sql.kernels import adaptive_isotropic_gaussian_kernel
from sb3_sql.svgd import post_tanh_log_correction, squash_log_jacobian, stein_direction

from strategies import PROPERTY_SETTINGS, particle_sets


def run_svgd(log_density, particles, n_steps, step_size=0.05, repulsive=True):
    """Move ``particles [1, K, D]`` along the Stein direction, every particle both fixed and updated."""
    for _ in range(n_steps):
        fixed = particles.detach().requires_grad_(True)
        (grad_log_p,) = th.autograd.grad(log_density(fixed).sum(), fixed)
        kernel = adaptive_isotropic_gaussian_kernel(particles, particles)
        if not repulsive:
            kernel = kernel._replace(grad_x=th.zeros_like(kernel.grad_x))
        particles = particles + step_size * stein_direction(kernel, grad_log_p)
    return particles[0]


def two_mode_log_density(modes, std=0.5):
    def log_density(x):
        dist_sq = (x.unsqueeze(-2) - modes).pow(2).sum(dim=-1)
        return th.logsumexp(-dist_sq / (2 * std**2), dim=-1)

    return log_density


@pytest.mark.parametrize("modes", [th.tensor([[-2.0], [2.0]]), th.tensor([[-2.0, -2.0], [2.0, 2.0]])], ids=["1d", "2d"])
def test_particles_cover_both_modes_and_collapse_without_repulsion(modes):
    th.manual_seed(0)
    start = th.randn(1, 100, modes.shape[1])
    log_density = two_mode_log_density(modes)
    for repulsive in (True, False):
        particles = run_svgd(log_density, start.clone(), n_steps=500, repulsive=repulsive)
        near_first = (particles - modes[0]).norm(dim=-1) < (particles - modes[1]).norm(dim=-1)
        spreads = [particles[near_first].std(dim=0).mean().item(), particles[~near_first].std(dim=0).mean().item()]
        if repulsive:
            assert 0.3 <= near_first.float().mean().item() <= 0.7
            assert spreads == pytest.approx([0.5, 0.5], abs=0.1)  # the target's standard deviation
        else:
            assert max(spreads) < 0.3, "without the repulsive term the particles should collapse"


def test_pre_tanh_particles_match_the_exact_squashed_density():
    # Target on (-1, 1): p(a) ~ exp(c a); particles u with a = tanh(u).
    c = 3.0
    th.manual_seed(0)
    n_particles = 200
    particles = run_svgd(
        lambda u: c * th.tanh(u).squeeze(-1) + squash_log_jacobian(u), 0.3 * th.randn(1, n_particles, 1), n_steps=2000
    )
    actions = th.tanh(particles).squeeze(-1).sort().values
    exact_cdf = (th.exp(c * actions) - math.exp(-c)) / (math.exp(c) - math.exp(-c))
    empirical_cdf = (th.arange(n_particles) + 0.5) / n_particles
    assert (exact_cdf - empirical_cdf).abs().max().item() < 0.05
    assert actions.mean().item() == pytest.approx(1 / math.tanh(c) - 1 / c, abs=0.01)


def test_post_tanh_particles_follow_the_reference_biased_density():
    # The reference formulation converges to exp(c a) * (1 - a^2), whose mean is smaller.
    c = 3.0
    th.manual_seed(0)
    particles = run_svgd(
        lambda a: c * a.squeeze(-1) + post_tanh_log_correction(a), th.tanh(0.3 * th.randn(1, 200, 1)), n_steps=2000
    )
    grid = th.linspace(-1, 1, 20001, dtype=th.float64)
    weights = th.exp(c * grid) * (1 - grid**2)
    biased_mean = ((grid * weights).sum() / weights.sum()).item()
    assert particles.mean().item() == pytest.approx(biased_mean, abs=0.02)
    assert biased_mean < 1 / math.tanh(c) - 1 / c - 0.1


def test_squash_log_jacobian_is_stable_and_exact():
    u = th.tensor([[-30.0, -2.0, 0.0, 0.7, 30.0]], requires_grad=True)
    log_jac = squash_log_jacobian(u.T)  # one dimension per row
    naive = th.log(1 - th.tanh(u.detach().T[1:4]) ** 2).squeeze(-1)
    th.testing.assert_close(log_jac[1:4].detach(), naive)
    assert th.isfinite(log_jac).all()
    (grad,) = th.autograd.grad(log_jac.sum(), u)
    th.testing.assert_close(grad, -2 * th.tanh(u.detach()))


@PROPERTY_SETTINGS
@given(particle_sets(), st.floats(-3, 3), st.floats(-10, 10), st.integers(0, 2**31 - 1))
def test_stein_direction_is_finite_shaped_linear_and_permutation_equivariant(particles, log_score_scale, factor, seed):
    xs, ys = particles
    generator = th.Generator().manual_seed(seed)
    grad_log_p = 10.0**log_score_scale * th.randn(xs.shape, dtype=th.float64, generator=generator)  # [batch, Kx, D]
    kernel = adaptive_isotropic_gaussian_kernel(xs, ys)
    direction = stein_direction(kernel, grad_log_p)
    assert direction.shape == ys.shape and th.isfinite(direction).all()
    # Affine in the score: the driving term scales with grad log p, the repulsive term does not.
    repulsion = stein_direction(kernel, th.zeros_like(grad_log_p))
    th.testing.assert_close(stein_direction(kernel, factor * grad_log_p) - repulsion, factor * (direction - repulsion))
    # Reordering the fixed particles (with their scores) changes nothing; reordering the updated ones reorders phi.
    fixed_order, updated_order = th.randperm(xs.shape[1], generator=generator), th.randperm(ys.shape[1], generator=generator)
    permuted_kernel = adaptive_isotropic_gaussian_kernel(xs[:, fixed_order], ys[:, updated_order])
    permuted = stein_direction(permuted_kernel, grad_log_p[:, fixed_order])
    th.testing.assert_close(permuted, direction[:, updated_order])

"""Plain SVGD (no RL) with the project's kernel and Stein direction."""

import math

import pytest
import torch as th
from hypothesis import given
from hypothesis import strategies as st

from sb3_sql.kernels import MIN_BANDWIDTH, MULTISCALE, adaptive_isotropic_gaussian_kernel
from sb3_sql.svgd import post_tanh_log_correction, squash_log_jacobian, stein_direction

from strategies import PROPERTY_SETTINGS, particle_sets


def run_svgd(log_density, particles, n_steps, step_size=0.05, repulsive=True):
    """Move ``particles [1, K, D]`` along the Stein direction, every particle both fixed and updated."""
    for _ in range(n_steps):
        fixed = particles.detach().requires_grad_(True)
        (grad_log_p,) = th.autograd.grad(log_density(fixed).sum(), fixed)
        kernel = adaptive_isotropic_gaussian_kernel(particles, particles)
        if not repulsive:
            kernel = kernel._replace(repulsion=th.zeros_like(kernel.repulsion))
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


def broadcast_stein_direction(xs, ys, grad_log_p, scales):
    """The Stein direction as first written: the kernel gradient as a ``[batch, Kx, Ky, D]`` tensor, then a mean."""
    diff = xs.unsqueeze(-2) - ys.unsqueeze(-3)  # [..., Kx, Ky, D]
    dist_sq = diff.pow(2).sum(dim=-1)
    median_sq = dist_sq.flatten(start_dim=-2).median(dim=-1).values
    values, grad_x = th.zeros_like(dist_sq), th.zeros_like(diff)
    for scale in scales:
        bandwidth = (scale * median_sq / math.log(xs.shape[-2])).clamp(min=MIN_BANDWIDTH)[..., None, None]
        values_h = th.exp(-dist_sq / bandwidth)
        values = values + values_h / len(scales)
        grad_x = grad_x - 2.0 * diff / bandwidth.unsqueeze(-1) * values_h.unsqueeze(-1) / len(scales)
    driving = values.unsqueeze(-1) * grad_log_p.unsqueeze(-2)
    return values, grad_x.mean(dim=-3), (driving + grad_x).mean(dim=-3)


@PROPERTY_SETTINGS
@given(particle_sets(), st.sampled_from([(1.0,), MULTISCALE, (0.3,)]), st.integers(0, 2**31 - 1))
def test_stein_direction_as_matrix_products_equals_the_broadcast_form(particles, scales, seed):
    xs, ys = particles
    grad_log_p = th.randn(xs.shape, dtype=th.float64, generator=th.Generator().manual_seed(seed))
    values, repulsion, direction = broadcast_stein_direction(xs, ys, grad_log_p, scales)
    kernel = adaptive_isotropic_gaussian_kernel(xs, ys, scales)
    th.testing.assert_close(kernel.values, values)
    th.testing.assert_close(kernel.repulsion, repulsion, rtol=1e-7, atol=1e-9 * repulsion.abs().max().item())
    th.testing.assert_close(
        stein_direction(kernel, grad_log_p), direction, rtol=1e-7, atol=1e-9 * direction.abs().max().item()
    )


def test_stein_direction_in_float32_at_the_sampler_size_equals_the_broadcast_form():
    # SQL's default step: 128 states, 16 fixed and 16 updated pre-tanh particles, HalfCheetah's 6 dimensions.
    generator = th.Generator().manual_seed(0)
    xs, ys, grad_log_p = (2.0 * th.randn(128, 16, 6, generator=generator) for _ in range(3))
    _, _, direction = broadcast_stein_direction(xs.double(), ys.double(), grad_log_p.double(), MULTISCALE)
    matrix_form = stein_direction(adaptive_isotropic_gaussian_kernel(xs, ys, MULTISCALE), grad_log_p)
    assert (matrix_form.double() - direction).abs().max().item() < 1e-5 * direction.abs().max().item()

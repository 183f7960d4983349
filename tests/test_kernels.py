import math

import pytest
import torch as th
from hypothesis import assume, given
from hypothesis import strategies as st

from sb3_sql.kernels import MIN_BANDWIDTH, adaptive_isotropic_gaussian_kernel

from strategies import PROPERTY_SETTINGS, particle_sets


def test_closed_form_case():
    # The worked example of docs/method.md, "The kernel": Kx=2, Ky=1, D=1, x=(0,0), y=1.
    kernel = adaptive_isotropic_gaussian_kernel(th.zeros(2, 1), th.ones(1, 1))
    assert kernel.bandwidth.item() == pytest.approx(1 / math.log(2))
    assert kernel.values.squeeze().tolist() == pytest.approx([0.5, 0.5])
    assert kernel.repulsion.squeeze().tolist() == pytest.approx(math.log(2))


def test_gradient_matches_autograd():
    th.manual_seed(0)
    xs = th.randn(3, 5, 4, dtype=th.float64, requires_grad=True)
    ys = th.randn(3, 6, 4, dtype=th.float64)
    kernel = adaptive_isotropic_gaussian_kernel(xs, ys)
    assert kernel.values.shape == (3, 5, 6)
    assert kernel.repulsion.shape == (3, 6, 4)
    assert kernel.bandwidth.shape == (3,)
    # kappa_ji depends on x_j only, so the gradient of sum_j kappa_ji w.r.t. x_j is grad_{x_j} kappa_ji.
    for i in range(ys.shape[1]):
        (expected,) = th.autograd.grad(kernel.values[..., i].sum(), xs, retain_graph=True)
        th.testing.assert_close(kernel.repulsion[..., i, :], expected.mean(dim=-2))


def test_bandwidth_uses_lower_median():
    # Distances squared 1, 4, 9, 16: lower median 4; the mean of the middle two would be 6.5.
    ys = th.tensor([[1.0]])
    xs = th.tensor([[0.0], [-1.0], [-2.0], [-3.0]])
    kernel = adaptive_isotropic_gaussian_kernel(xs, ys)
    assert kernel.bandwidth.item() == pytest.approx(4 / math.log(4))


def test_bandwidth_carries_no_gradient_and_has_a_floor():
    xs = th.zeros(1, 4, 2, requires_grad=True)
    kernel = adaptive_isotropic_gaussian_kernel(xs, th.zeros(1, 2, 2))
    assert kernel.bandwidth.item() == pytest.approx(MIN_BANDWIDTH)
    assert not kernel.bandwidth.requires_grad
    assert th.all(kernel.values == 1.0)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="at least 2 fixed particles"):
        adaptive_isotropic_gaussian_kernel(th.zeros(1, 3), th.zeros(2, 3))
    with pytest.raises(ValueError, match="do not match"):
        adaptive_isotropic_gaussian_kernel(th.zeros(4, 3), th.zeros(2, 2))


@PROPERTY_SETTINGS
@given(particle_sets())
def test_kernel_is_finite_and_shaped_for_any_particles(particles):
    xs, ys = particles
    kernel = adaptive_isotropic_gaussian_kernel(xs, ys)
    (batch, n_fixed, dim), n_updated = xs.shape, ys.shape[1]
    assert kernel.values.shape == (batch, n_fixed, n_updated)
    assert kernel.repulsion.shape == (batch, n_updated, dim)
    assert kernel.bandwidth.shape == (batch,)
    assert th.isfinite(kernel.repulsion).all() and th.isfinite(kernel.bandwidth).all()
    assert ((kernel.values >= 0) & (kernel.values <= 1)).all()
    assert (kernel.bandwidth >= MIN_BANDWIDTH).all()


@PROPERTY_SETTINGS
@given(particle_sets(n_sets=1))
def test_kernel_is_symmetric_in_its_distance(particles):
    # Swapping the two sets transposes the distances: same median, same values, opposite gradients
    # (summed over all pairs, the repulsions of the two directions cancel).
    (xs,) = particles
    ys = xs.flip(-2) + 0.5 * xs.std()
    forward, backward = adaptive_isotropic_gaussian_kernel(xs, ys), adaptive_isotropic_gaussian_kernel(ys, xs)
    th.testing.assert_close(forward.values, backward.values.transpose(-1, -2))
    th.testing.assert_close(forward.repulsion.sum(dim=-2), -backward.repulsion.sum(dim=-2))
    th.testing.assert_close(forward.bandwidth, backward.bandwidth)


@PROPERTY_SETTINGS
@given(particle_sets(), st.floats(-100, 100), st.floats(2, 10), st.integers(0, 2**31 - 1))
def test_kernel_values_depend_only_on_distances_relative_to_the_bandwidth(particles, shift, factor, seed):
    xs, ys = particles
    kernel = adaptive_isotropic_gaussian_kernel(xs, ys)
    assume(bool((kernel.bandwidth > MIN_BANDWIDTH).all()))  # the floor breaks scale invariance on purpose
    # A rotation (orthogonal matrix) and a shift of both sets keep every distance.
    generator = th.Generator().manual_seed(seed)
    rotation, _ = th.linalg.qr(th.randn(xs.shape[-1], xs.shape[-1], dtype=th.float64, generator=generator))
    moved = adaptive_isotropic_gaussian_kernel(xs @ rotation + shift, ys @ rotation + shift)
    th.testing.assert_close(moved.values, kernel.values, rtol=1e-6, atol=1e-9)
    # Scaling both sets scales the bandwidth by factor^2 and leaves the values unchanged.
    scaled = adaptive_isotropic_gaussian_kernel(factor * xs, factor * ys)
    th.testing.assert_close(scaled.bandwidth, factor**2 * kernel.bandwidth)
    th.testing.assert_close(scaled.values, kernel.values)

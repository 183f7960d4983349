import math

import pytest
import torch as th

from sb3_sql.entropy import kozachenko_leonenko_entropy, nearest_neighbour_log_distances, repulsion_neighbour_order


@pytest.mark.parametrize("dim", [1, 2, 6])
def test_gaussian_entropy_is_recovered_from_many_samples(dim):
    generator = th.Generator().manual_seed(dim)
    samples = 0.2 * th.randn(2, 2000, dim, generator=generator, dtype=th.float64)
    exact = 0.5 * dim * math.log(2 * math.pi * math.e * 0.2**2)
    estimates = kozachenko_leonenko_entropy(samples)
    assert estimates.shape == (2,)
    assert estimates.mean().item() == pytest.approx(exact, abs=0.05 * dim)


def test_uniform_box_entropy_and_scaling():
    generator = th.Generator().manual_seed(0)
    samples = 2 * th.rand(2000, 2, generator=generator, dtype=th.float64) - 1  # uniform on [-1, 1]^2: H = 2 log 2
    estimate = kozachenko_leonenko_entropy(samples).item()
    assert estimate == pytest.approx(2 * math.log(2), abs=0.05)
    # Scaling the samples by c adds D log c, exactly.
    assert kozachenko_leonenko_entropy(0.1 * samples).item() == pytest.approx(estimate + 2 * math.log(0.1), abs=1e-9)


def test_coincident_samples_are_finite_and_one_sample_is_refused():
    assert th.isfinite(kozachenko_leonenko_entropy(th.zeros(5, 3))).all()
    with pytest.raises(ValueError, match="at least 2 samples"):
        kozachenko_leonenko_entropy(th.zeros(1, 3))


def test_nearest_neighbour_log_distances_match_a_hand_computation():
    # 1-D: updated particles at 0 and 0.5, a fixed one at 0.7. Nearest neighbours: 0 -> 0.5 (distance
    # 0.5), 0.5 -> 0.7 (0.2); a particle is not its own neighbour.
    updated = th.tensor([[[0.0], [0.5]]], dtype=th.float64, requires_grad=True)
    fixed = th.tensor([[[0.7]]], dtype=th.float64)
    log_distances = nearest_neighbour_log_distances(updated, fixed)
    assert log_distances.shape == (1, 2)
    assert th.allclose(log_distances, th.log(th.tensor([[0.5, 0.2]], dtype=th.float64)))
    # d/du0 log|u0 - u1| = 1 / (u0 - u1) = -2; u1 appears in both: 1 / (u1 - u0) + 1 / (u1 - 0.7) = 2 - 5.
    (gradient,) = th.autograd.grad(log_distances.sum(), updated)
    assert th.allclose(gradient, th.tensor([[[-2.0], [-3.0]]], dtype=th.float64))


def test_nearest_neighbour_log_distances_need_two_particles():
    assert nearest_neighbour_log_distances(th.zeros(3, 1, 2), th.zeros(3, 1, 2)).shape == (3, 1)
    with pytest.raises(ValueError, match="at least 2 particles"):
        nearest_neighbour_log_distances(th.zeros(3, 1, 2), th.zeros(3, 0, 2))


def test_second_neighbour_log_distances_match_a_hand_computation():
    # 1-D: updated particles at 0 and 0.5, fixed ones at 0.7 and -0.1. Second nearest neighbours:
    # 0 -> {-0.1: 0.1, 0.5: 0.5, 0.7: 0.7} -> 0.5; 0.5 -> {0.7: 0.2, 0: 0.5, -0.1: 0.6} -> 0 (0.5).
    updated = th.tensor([[[0.0], [0.5]]], dtype=th.float64, requires_grad=True)
    fixed = th.tensor([[[0.7], [-0.1]]], dtype=th.float64)
    log_distances = nearest_neighbour_log_distances(updated, fixed, order=2)
    assert th.allclose(log_distances, th.log(th.tensor([[0.5, 0.5]], dtype=th.float64)))
    # Both are log|u0 - u1|: d/du0 = 2 * 1 / (u0 - u1) = -4, d/du1 = +4.
    (gradient,) = th.autograd.grad(log_distances.sum(), updated)
    assert th.allclose(gradient, th.tensor([[[-4.0], [4.0]]], dtype=th.float64))
    with pytest.raises(ValueError, match="order 4 needs at least 5 particles"):
        nearest_neighbour_log_distances(updated, fixed, order=4)
    with pytest.raises(ValueError, match="order must be at least 1"):
        nearest_neighbour_log_distances(updated, fixed, order=0)


def test_repulsion_neighbour_order_is_the_smallest_with_a_finite_mean_repulsion():
    # k D > 1: the second neighbour in one dimension, the first from two dimensions on.
    assert [repulsion_neighbour_order(dim) for dim in (1, 2, 6, 17)] == [2, 1, 1, 1]
    with pytest.raises(ValueError, match="at least 1"):
        repulsion_neighbour_order(0)


@pytest.mark.parametrize("n_samples", [2, 3, 16, 32])
def test_estimate_uses_the_digamma_of_the_sample_count(n_samples):
    # K samples on a line, 1 apart: every nearest neighbour at distance 1, so the estimate is
    # psi(K) - psi(1) + log V_1 with V_1 = 2, psi(1) = -Euler's constant.
    samples = th.arange(n_samples, dtype=th.float64).reshape(1, n_samples, 1)
    digamma = th.special.digamma(th.tensor(float(n_samples), dtype=th.float64)).item()
    expected = digamma + 0.5772156649015329 + math.log(2.0)
    assert kozachenko_leonenko_entropy(samples).item() == pytest.approx(expected, rel=1e-12)

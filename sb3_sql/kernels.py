"""Kernels for Stein variational gradient descent (SVGD).

Source: Haarnoja et al., "Reinforcement Learning with Deep Energy-Based Policies", ICML 2017,
Eq. 13, with the adaptive bandwidth of the reference code (haarnoja/softqlearning).
"""

from typing import NamedTuple

import numpy as np
import torch as th

#: Smallest kernel bandwidth, keeps the kernel finite when all particles coincide.
MIN_BANDWIDTH = 1e-3


class KernelOutput(NamedTuple):
    """Values and gradients of a kernel between fixed particles ``x`` and updated particles ``y``.

    :param values: ``kappa(x_j, y_i)``, shape ``[..., Kx, Ky]``.
    :param grad_x: ``grad_{x_j} kappa(x_j, y_i)``, shape ``[..., Kx, Ky, D]``.
    :param bandwidth: ``h``, one per leading index, shape ``[...]``.
    """

    values: th.Tensor
    grad_x: th.Tensor
    bandwidth: th.Tensor


def adaptive_isotropic_gaussian_kernel(xs: th.Tensor, ys: th.Tensor) -> KernelOutput:
    """Isotropic RBF kernel whose bandwidth adapts to the particles (the median heuristic).

    For each leading index (one state)::

        d2_ji = ||x_j - y_i||^2
        h     = max(median(d2) / log(Kx), 1e-3)      lower median over all Kx * Ky pairs
        kappa_ji = exp(-d2_ji / h)
        grad_{x_j} kappa_ji = -2 (x_j - y_i) / h * kappa_ji

    The median is the lower median (``torch.median``), as in the reference code; the bandwidth
    carries no gradient. Example: ``x = [[0], [0]]``, ``y = [[1]]`` gives ``h = 1 / ln 2``,
    ``kappa = 0.5`` and ``grad_x kappa = ln 2``.

    :param xs: fixed particles, shape ``[..., Kx, D]``.
    :param ys: updated particles, shape ``[..., Ky, D]``.
    :return: the kernel values ``[..., Kx, Ky]``, their gradients with respect to ``xs``
        ``[..., Kx, Ky, D]`` and the bandwidth ``[...]``.
    :raises ValueError: if the shapes disagree or ``Kx < 2`` (the bandwidth divides by ``log Kx``).
    """
    if xs.shape[:-2] != ys.shape[:-2] or xs.shape[-1] != ys.shape[-1]:
        raise ValueError(f"Particle shapes do not match: xs {tuple(xs.shape)}, ys {tuple(ys.shape)}")
    n_fixed = xs.shape[-2]
    if n_fixed < 2:
        raise ValueError(f"The adaptive kernel needs at least 2 fixed particles, got {n_fixed}")

    diff = xs.unsqueeze(-2) - ys.unsqueeze(-3)  # [..., Kx, Ky, D]
    dist_sq = diff.pow(2).sum(dim=-1)  # [..., Kx, Ky]

    median_sq = dist_sq.detach().flatten(start_dim=-2).median(dim=-1).values  # [...]
    bandwidth = (median_sq / np.log(n_fixed)).clamp(min=MIN_BANDWIDTH)
    bandwidth_ = bandwidth[..., None, None]

    values = th.exp(-dist_sq / bandwidth_)  # [..., Kx, Ky]
    grad_x = -2.0 * diff / bandwidth_.unsqueeze(-1) * values.unsqueeze(-1)  # [..., Kx, Ky, D]
    return KernelOutput(values=values, grad_x=grad_x, bandwidth=bandwidth)

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
    """Values of a kernel between fixed particles ``x`` and updated particles ``y``, and its mean gradient.

    :param values: ``kappa(x_j, y_i)``, shape ``[..., Kx, Ky]``.
    :param repulsion: ``mean_j grad_{x_j} kappa(x_j, y_i)``, the repulsive term of the Stein
        direction (Eq. 13), shape ``[..., Ky, D]``.
    :param bandwidth: ``h``, one per leading index, shape ``[...]``.
    """

    values: th.Tensor
    repulsion: th.Tensor
    bandwidth: th.Tensor


#: Named bandwidth rules: the scales, relative to the reference bandwidth ``median / log(Kx)``, of the
#: RBF kernels that are averaged. ``"paper"``'s scale depends on ``K`` and is computed in
#: :func:`bandwidth_scales`.
BANDWIDTH_RULES = ("multiscale", "reference", "paper")
#: The scales of ``"multiscale"``: the reference bandwidth and one ten times narrower.
MULTISCALE = (1.0, 0.1)


def bandwidth_scales(rule: str | float | tuple[float, ...], n_fixed: int, n_particles: int) -> tuple[float, ...]:
    """The scales of the averaged RBF kernels, relative to the reference bandwidth ``median / log(Kx)``.

    - ``"reference"``: ``(1,)``, the reference code's ``h = median / log(Kx)``.
    - ``"paper"``: the paper's text (appendix), ``h = median / (2 log(K + 1))``, i.e. the scale
      ``log(Kx) / (2 log(K + 1))``.
    - ``"multiscale"``: ``(1, 0.1)``, the mean of the reference kernel and one ten times narrower:
      the wide one couples the particles of distant modes (it moves mass between them), the
      narrow one resolves the shape of each mode (see the fidelity benchmark in the docs).
    - a positive float or a tuple of them: these scales.

    :param rule: the rule's name, or the scales.
    :param n_fixed: ``Kx``, the fixed particles per state.
    :param n_particles: ``K``, all particles per state.
    :return: one or more positive scales.
    :raises ValueError: for an unknown name or a scale that is not a positive finite number.
    """
    if isinstance(rule, str):
        if rule == "reference":
            return (1.0,)
        if rule == "paper":
            return (np.log(n_fixed) / (2.0 * np.log(n_particles + 1)),)
        if rule == "multiscale":
            return MULTISCALE
        raise ValueError(f"kernel_bandwidth must be one of {BANDWIDTH_RULES} or positive scales, got {rule!r}")
    try:
        scales = (float(rule),) if isinstance(rule, (int, float)) else tuple(float(scale) for scale in rule)
    except (TypeError, ValueError):
        scales = ()
    if not scales or not all(np.isfinite(scale) and scale > 0 for scale in scales):
        raise ValueError(
            f"kernel_bandwidth scales must be positive finite numbers (relative to median / log Kx), got {rule!r}"
        )
    return scales


def adaptive_isotropic_gaussian_kernel(xs: th.Tensor, ys: th.Tensor, scales: tuple[float, ...] = (1.0,)) -> KernelOutput:
    """Isotropic RBF kernel whose bandwidth adapts to the particles (the median heuristic), or a mean of several.

    For each leading index (one state)::

        d2_ji = ||x_j - y_i||^2
        h     = max(median(d2) / log(Kx), 1e-3)      lower median over all Kx * Ky pairs
        kappa_ji = mean_s exp(-d2_ji / h_s),          h_s = max(s * h, 1e-3) over the scales s
        repulsion_i = mean_j grad_{x_j} kappa_ji
                    = mean_s -2 / (Kx h_s) * sum_j exp(-d2_ji / h_s) (x_j - y_i)

    With the single scale 1 this is the reference code's kernel (Haarnoja et al. 2017, Eq. 13,
    and haarnoja/softqlearning); a mean of RBF kernels is again a positive definite kernel, so
    the fixed point of SVGD is unchanged. The median is the lower median (``torch.median``), as
    in the reference code; the bandwidth carries no gradient. The distances and the repulsion are
    matrix products over the particles (``[..., Kx, Ky]`` at most, no ``[..., Kx, Ky, D]`` tensor).
    Example (one scale): ``x = [[0], [0]]``, ``y = [[1]]`` gives ``h = 1 / ln 2``, ``kappa = 0.5``
    and ``repulsion = ln 2``.

    :param xs: fixed particles, shape ``[..., Kx, D]``.
    :param ys: updated particles, shape ``[..., Ky, D]``.
    :param scales: the bandwidth of each averaged kernel, relative to ``h`` (:func:`bandwidth_scales`).
    :return: the kernel values ``[..., Kx, Ky]``, the repulsion ``[..., Ky, D]`` and the bandwidth
        of the first scale ``[...]``.
    :raises ValueError: if the shapes disagree or ``Kx < 2`` (the bandwidth divides by ``log Kx``).
    """
    if xs.shape[:-2] != ys.shape[:-2] or xs.shape[-1] != ys.shape[-1]:
        raise ValueError(f"Particle shapes do not match: xs {tuple(xs.shape)}, ys {tuple(ys.shape)}")
    n_fixed = xs.shape[-2]
    if n_fixed < 2:
        raise ValueError(f"The adaptive kernel needs at least 2 fixed particles, got {n_fixed}")

    # Distances without the mm expansion ||x||^2 + ||y||^2 - 2 x.y, which loses precision for close particles.
    dist_sq = th.cdist(xs, ys, compute_mode="donot_use_mm_for_euclid_dist").pow(2)  # [..., Kx, Ky]
    median_sq = dist_sq.detach().flatten(start_dim=-2).median(dim=-1).values  # [...]

    bandwidths = [(scale * median_sq / np.log(n_fixed)).clamp(min=MIN_BANDWIDTH) for scale in scales]  # each [...]
    values = th.zeros_like(dist_sq)
    # sum_j w_ji (x_j - y_i) = (w^T x)_i - y_i * sum_j w_ji, with w_ji = exp(-d2_ji / h_s) / h_s summed over s.
    weights = th.zeros_like(dist_sq)
    for bandwidth in bandwidths:
        bandwidth_ = bandwidth[..., None, None]
        values_h = th.exp(-dist_sq / bandwidth_)  # [..., Kx, Ky]
        values = values + values_h / len(scales)
        weights = weights + values_h / bandwidth_
    weights_t = weights.transpose(-1, -2)  # [..., Ky, Kx]
    weighted_offsets = weights_t @ xs - ys * weights_t.sum(dim=-1, keepdim=True)  # [..., Ky, D]
    repulsion = -2.0 / (len(scales) * n_fixed) * weighted_offsets
    return KernelOutput(values=values, repulsion=repulsion, bandwidth=bandwidths[0])

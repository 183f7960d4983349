"""The Stein variational direction and the log-densities of the SVGD particles.

Source: Haarnoja et al., ICML 2017, Eq. 13-14; Liu & Wang, "Stein Variational Gradient Descent",
NIPS 2016. The particle spaces are described in the documentation (docs/method.md, "The particle spaces").
"""

import numpy as np
import torch as th
from torch.nn import functional as F

from sb3_sql.kernels import KernelOutput

#: Actions with ``|a|`` above this count as saturated (logged as ``train/saturated_fraction``).
SATURATION_THRESHOLD = 0.999
#: Added inside ``log(1 - a^2)`` by the reference code's post-tanh correction.
POST_TANH_EPS = 1e-6


def stein_direction(kernel: KernelOutput, grad_log_p: th.Tensor) -> th.Tensor:
    """Stein variational direction for each updated particle (Eq. 13)::

        phi(y_i) = mean_j [ kappa(x_j, y_i) * grad log p(x_j) + grad_{x_j} kappa(x_j, y_i) ]

    The first term drives the updated particles towards high density; the second (the kernel
    gradient, ``kernel.repulsion``) repels them from each other and keeps the particles spread
    over all modes. The driving term is a matrix product, ``kappa^T grad log p / Kx``.

    :param kernel: kernel between the fixed particles ``x`` (``Kx``) and the updated particles
        ``y`` (``Ky``): values ``[..., Kx, Ky]``, repulsion ``[..., Ky, D]``.
    :param grad_log_p: gradient of the target log-density at the fixed particles, ``[..., Kx, D]``.
    :return: the direction ``phi``, shape ``[..., Ky, D]``.
    """
    n_fixed = grad_log_p.shape[-2]
    driving = kernel.values.transpose(-1, -2) @ grad_log_p / n_fixed  # [..., Ky, D]
    return driving + kernel.repulsion


def squash_log_jacobian(pre_tanh: th.Tensor) -> th.Tensor:
    """Log-determinant of the Jacobian of ``a = tanh(u)``, summed over action dimensions.

    ``sum_d log(1 - tanh(u_d)^2)``, computed as ``2 * (log 2 - u - softplus(-2u))``, which stays
    finite and has the bounded gradient ``-2 tanh(u)`` when particles saturate.

    :param pre_tanh: particles ``u``, shape ``[..., D]``.
    :return: shape ``[...]``.
    """
    return (2.0 * (np.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(dim=-1)


def post_tanh_log_correction(actions: th.Tensor) -> th.Tensor:
    """The reference code's squash correction in action space: ``sum_d log(1 - a_d^2 + 1e-6)``.

    With it the sampler converges to ``exp(Q/alpha) * prod_d (1 - a_d^2)`` rather than
    ``exp(Q/alpha)`` (docs/method.md, "The particle spaces"); kept to reproduce the reference results.

    :param actions: particles ``a`` in ``(-1, 1)``, shape ``[..., D]``.
    :return: shape ``[...]``.
    """
    return th.log(1.0 - actions.pow(2) + POST_TANH_EPS).sum(dim=-1)

"""The soft value of a continuous action space, estimated by importance sampling.

Source: Haarnoja et al., ICML 2017, Eq. 10 with a uniform proposal on ``[-1, 1]^D``.
"""

import numpy as np
import torch as th


def importance_sampled_soft_value(q_values: th.Tensor, ent_coef: float | th.Tensor, action_dim: int) -> th.Tensor:
    """Soft value ``V(s) = alpha * log integral exp(Q(s, a) / alpha) da`` over ``[-1, 1]^D`` (Eq. 10).

    With ``M`` actions drawn uniformly (density ``2^-D``)::

        V(s) = alpha * [ logsumexp_j(Q(s, a_j) / alpha) - log M + D * log 2 ]

    For a constant ``Q = c`` this is exactly ``c + alpha * D * log 2``.

    :param q_values: ``Q(s, a_j)`` at ``M`` uniform actions per state, shape ``[batch, M]``.
    :param ent_coef: the temperature ``alpha`` (> 0), a float or a scalar tensor.
    :param action_dim: ``D``, the number of action dimensions.
    :return: the soft value, shape ``[batch]``, in the units of ``Q``.
    """
    n_particles = q_values.shape[-1]
    log_partition = th.logsumexp(q_values / ent_coef, dim=-1) - np.log(n_particles) + action_dim * np.log(2.0)
    return ent_coef * log_partition

"""Soft values: importance sampled for continuous actions, exact for discrete ones.

Source: Haarnoja et al., ICML 2017, Eq. 5 (exact, discrete actions) and Eq. 10 with a uniform
proposal on ``[-1, 1]^D`` (continuous actions); the soft double-Q estimate applies double
Q-learning (van Hasselt, NIPS 2010) to the soft value (docs/method.md, "Discrete soft Q-learning").
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


def exact_soft_value(q_values: th.Tensor, ent_coef: float | th.Tensor) -> th.Tensor:
    """Soft value of a discrete action space ``V(s) = alpha * logsumexp_a(Q(s, a) / alpha)`` (Eq. 5).

    Exact, no sampling; it tends to ``max_a Q(s, a)`` as ``alpha -> 0``.

    :param q_values: ``Q(s, .)`` for all ``A`` actions, shape ``[batch, A]``.
    :param ent_coef: the temperature ``alpha`` (> 0), a float or a scalar tensor.
    :return: the soft value, shape ``[batch]``, in the units of ``Q``.
    """
    return ent_coef * th.logsumexp(q_values / ent_coef, dim=-1)


def soft_double_q_value(q_values_1: th.Tensor, q_values_2: th.Tensor, ent_coef: float | th.Tensor) -> th.Tensor:
    """Soft double-Q estimate of the soft value of a discrete action space.

    The Boltzmann policy of the first soft Q-function ``pi_1 = softmax(Q_1 / alpha)`` chooses the
    actions and the second one evaluates them::

        V(s) = E_{a ~ pi_1}[ Q_2(s, a) - alpha * log pi_1(a|s) ]
             = alpha * log Z_1(s) + E_{a ~ pi_1}[ Q_2(s, a) - Q_1(s, a) ]

    It equals :func:`exact_soft_value` of ``Q_1`` when ``Q_1 = Q_2`` and tends to the double
    Q-learning estimate ``Q_2(s, argmax_a Q_1(s, a))`` as ``alpha -> 0``.

    :param q_values_1: ``Q_1(s, .)``, shape ``[batch, A]``.
    :param q_values_2: ``Q_2(s, .)``, shape ``[batch, A]``.
    :param ent_coef: the temperature ``alpha`` (> 0), a float or a scalar tensor.
    :return: the soft value, shape ``[batch]``, in the units of ``Q``.
    """
    policy_1 = th.softmax(q_values_1 / ent_coef, dim=-1)
    return exact_soft_value(q_values_1, ent_coef) + (policy_1 * (q_values_2 - q_values_1)).sum(dim=-1)

"""Soft values: importance sampled for continuous actions, exact for discrete ones.

Source: Haarnoja et al., ICML 2017, Eq. 5 (exact, discrete actions) and Eq. 10 with a uniform
proposal on ``[-1, 1]^D`` (continuous actions), or with a defensive mixture of that uniform and a
Gaussian fitted to the sampler's particles (Hesterberg, Technometrics 1995; weighted by the balance
heuristic, Veach & Guibas, SIGGRAPH 1995; docs/method.md, "The importance-sampled soft value"); the
soft double-Q estimate applies double Q-learning (van Hasselt, NIPS 2010) to the soft value
(docs/method.md, "Discrete soft Q-learning").
"""

import numpy as np
import torch as th

from sb3_sql.svgd import squash_log_jacobian

#: Shrinkage of a :class:`SquashedGaussianProposal`'s covariance towards its diagonal.
PROPOSAL_COVARIANCE_SHRINKAGE = 0.2
#: Variance added to a :class:`SquashedGaussianProposal`'s diagonal (pre-tanh units squared).
PROPOSAL_COVARIANCE_JITTER = 1e-4
#: Actions are clamped this far inside ``[-1, 1]`` where their pre-tanh value ``atanh(a)`` is needed.
ACTION_CLAMP = 1e-6
#: Sampler particles per state a ``value_proposal="sampler"`` proposal is fitted to.
PROPOSAL_FIT_PARTICLES = 32
#: The proposals of the continuous soft value: Eq. 10's uniform, or a defensive mixture with a fit to the sampler.
VALUE_PROPOSALS = ("uniform", "sampler")


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


def importance_sampled_soft_value_with_proposal(
    q_values: th.Tensor, log_proposal_density: th.Tensor, ent_coef: float | th.Tensor
) -> th.Tensor:
    """Soft value ``V(s) = alpha * log integral exp(Q(s, a) / alpha) da`` from draws of any proposal (Eq. 10).

    With ``M`` actions ``a_j`` drawn from a proposal of density ``q_s`` on ``[-1, 1]^D``::

        V(s) = alpha * [ logsumexp_j(Q(s, a_j) / alpha - log q_s(a_j)) - log M ]

    ``exp(V / alpha)`` is estimated without bias, ``V`` with a downward bias (Jensen). With the uniform
    density ``log q = -D log 2`` it is :func:`importance_sampled_soft_value` (up to rounding).

    :param q_values: ``Q(s, a_j)`` at the ``M`` draws of each state, shape ``[batch, M]`` (reward units).
    :param log_proposal_density: ``log q_s(a_j)`` at the same draws, in action space (the density on
        ``[-1, 1]^D``, not on the pre-tanh space), shape ``[batch, M]``.
    :param ent_coef: the temperature ``alpha`` (> 0), a float or a scalar tensor.
    :return: the soft value, shape ``[batch]``, in the units of ``Q``.
    """
    n_particles = q_values.shape[-1]
    log_partition = th.logsumexp(q_values / ent_coef - log_proposal_density, dim=-1) - np.log(n_particles)
    return ent_coef * log_partition


class SquashedGaussianProposal:
    """A proposal on ``[-1, 1]^D`` fitted to a sampler's pre-tanh particles: ``a = tanh(u)``, ``u ~ N(mean, cov)``.

    Per state, the mean and the covariance of ``K`` pre-tanh particles, the covariance shrunk by
    :data:`PROPOSAL_COVARIANCE_SHRINKAGE` towards its diagonal (few particles in up to 17 dimensions)
    plus :data:`PROPOSAL_COVARIANCE_JITTER` on the diagonal. The density of an action is exact,
    the Gaussian density of ``u = atanh(a)`` divided by the tanh Jacobian ``prod_d (1 - a_d^2)``; it is
    evaluated at actions clamped :data:`ACTION_CLAMP` inside the open box (``atanh(+-1)`` is infinite).

    :param pre_tanh_particles: the sampler's particles at each state, shape ``[batch, K, D]``
        (``K >= 1``; with one particle the covariance is the jitter alone).
    """

    def __init__(self, pre_tanh_particles: th.Tensor):
        n_particles, action_dim = pre_tanh_particles.shape[-2:]
        mean = pre_tanh_particles.mean(dim=1)  # [batch, D]
        centred = pre_tanh_particles - mean.unsqueeze(1)
        covariance = centred.transpose(1, 2) @ centred / max(n_particles - 1, 1)  # [batch, D, D]
        diagonal = th.diag_embed(th.diagonal(covariance, dim1=-2, dim2=-1))
        identity = th.eye(action_dim, dtype=covariance.dtype, device=covariance.device)
        covariance = (
            (1 - PROPOSAL_COVARIANCE_SHRINKAGE) * covariance
            + PROPOSAL_COVARIANCE_SHRINKAGE * diagonal
            + PROPOSAL_COVARIANCE_JITTER * identity
        )
        # batch shape [batch, 1]: broadcasts against N draws per state. The covariance is positive definite by
        # construction (jitter on the diagonal), so the argument checks, a third of the proposal's time, are skipped.
        self.pre_tanh_distribution = th.distributions.MultivariateNormal(
            mean.unsqueeze(1), covariance_matrix=covariance.unsqueeze(1), validate_args=False
        )

    def sample_pre_tanh(self, n_draws: int) -> th.Tensor:
        """``N`` draws of ``u`` per state, shape ``[batch, N, D]``; the actions are ``tanh(u)``."""
        return self.pre_tanh_distribution.sample((n_draws,)).squeeze(2).transpose(0, 1)

    def log_density(self, actions: th.Tensor) -> th.Tensor:
        """Log density of the actions ``[batch, N, D]`` in ``[-1, 1]`` on the action box; shape ``[batch, N]``."""
        pre_tanh = th.atanh(actions.clamp(-1 + ACTION_CLAMP, 1 - ACTION_CLAMP))
        return self.pre_tanh_distribution.log_prob(pre_tanh) - squash_log_jacobian(pre_tanh)


def n_uniform_draws(n_particles: int, uniform_share: float) -> int:
    """Uniform draws among the ``M`` of a defensive mixture: ``round(share * M)``, at least one.

    :param n_particles: ``M``, the draws per state (>= 1).
    :param uniform_share: the uniform's share, in ``(0, 1]``.
    """
    return max(1, round(uniform_share * n_particles))


def defensive_mixture_log_density(log_fitted_density: th.Tensor, action_dim: int, uniform_share: float) -> th.Tensor:
    """Log density of the defensive mixture ``share * 2^-D + (1 - share) * p_fit(a)`` (balance heuristic).

    Draws taken in fixed counts from the two components and all weighted by the mixture density (the
    balance heuristic of Veach & Guibas, SIGGRAPH 1995) estimate ``exp(V / alpha)`` without bias when
    ``share`` is the uniform's count over ``M`` (:func:`n_uniform_draws`). The uniform component
    bounds every weight ``exp(Q / alpha) / q`` by ``2^D / share`` times ``exp(Q / alpha)``, however
    poorly the fitted density covers the integrand (Hesterberg, "Weighted average importance
    sampling and defensive mixture distributions", Technometrics 1995).

    :param log_fitted_density: ``log p_fit(a)`` at the draws (action space), shape ``[...]``.
    :param action_dim: ``D``.
    :param uniform_share: the uniform's share, in ``(0, 1]``; 1 gives ``-D log 2`` exactly.
    :return: ``log q(a)``, shape ``[...]``.
    :raises ValueError: if ``uniform_share`` is not in ``(0, 1]``.
    """
    if not 0 < uniform_share <= 1:
        raise ValueError(f"uniform_share must be in (0, 1], got {uniform_share}")
    log_uniform = th.full_like(log_fitted_density, -action_dim * np.log(2.0))
    if uniform_share == 1:
        return log_uniform
    return th.logaddexp(np.log(uniform_share) + log_uniform, np.log1p(-uniform_share) + log_fitted_density)


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

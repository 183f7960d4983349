"""Acting with SQL's sampler: the deterministic action, and sampling-importance-resampling at the acted state.

The sampler of SQL (Haarnoja et al., ICML 2017, section 3.2) is trained to draw from
``pi(a|s) ~ exp(Q(s, a) / alpha)`` but has no density, and it falls short of that target where it
serves many states or meets modes of unequal width (docs/method.md, "Acting"). Two tools act on
the soft Q-function itself:

- :func:`best_by_q`: the deterministic action is the particle of highest ``Q`` among ``N`` fixed
  draws of the sampler (:func:`deterministic_noise`), the policy's mode up to the sampler's reach.
- :class:`KernelDensityProposal` and :func:`importance_resample`: sampling-importance-resampling
  (Rubin, 1988) from a proposal whose density is exact: a mixture of Gaussians centred on the
  sampler's particles at the state (an adaptive kernel density estimate, each bandwidth the
  distance to the nearest other particle), with a uniform share over the action box (a defensive
  mixture, Hesterberg, 1995). Given the centres the proposal's density is known, so as the number
  of candidates ``M`` grows the resampled action follows ``exp(Q(s, .) / alpha)`` exactly, whatever
  the sampler's errors.

Everything works in the pre-tanh space ``u``, ``a = tanh(u)``, where the target's log-density is
``Q(s, tanh u) / alpha + sum_d log(1 - tanh^2 u_d)`` (docs/method.md, "The particle spaces").
"""

import math

import torch as th

from sb3_sql.svgd import squash_log_jacobian

#: Seed of the fixed noise of the deterministic action: the same ``N`` inputs at every call, so it repeats.
DETERMINISTIC_NOISE_SEED = 0
#: Sampler particles per state that centre the kernel density proposal of :func:`importance_resample`.
PROPOSAL_CENTRES = 32
#: Share of the proposal's candidates drawn uniformly on the action box.
PROPOSAL_UNIFORM_SHARE = 0.1
#: Smallest bandwidth of a proposal component (pre-tanh units), for centres that coincide.
MIN_BANDWIDTH = 1e-3
#: Uniform actions are kept inside ``(-1 + eps, 1 - eps)`` so that their pre-tanh value is finite.
UNIFORM_EDGE = 1e-6


def deterministic_noise(n_particles: int, action_dim: int) -> th.Tensor:
    """The sampler's fixed inputs for the deterministic action: ``xi = 0`` first, then ``N - 1`` fixed normal draws.

    They come from a generator seeded with :data:`DETERMINISTIC_NOISE_SEED`, so that they are the
    same at every call (SB3's ``predict(deterministic=True)`` repeats exactly) and after
    ``save``/``load``, without touching the global random state.

    :param n_particles: ``N`` (at least 1).
    :param action_dim: ``D``.
    :return: noise ``[N, D]`` (CPU).
    """
    generator = th.Generator().manual_seed(DETERMINISTIC_NOISE_SEED)
    noise = th.randn(n_particles, action_dim, generator=generator)
    noise[0] = 0.0
    return noise


def best_by_q(actions: th.Tensor, q_values: th.Tensor) -> th.Tensor:
    """The action of highest soft Q-value at each state.

    :param actions: ``[batch, N, D]``.
    :param q_values: ``Q(s, a)`` of those actions, ``[batch, N]``.
    :return: ``[batch, D]``.
    """
    best = q_values.argmax(dim=1)  # [batch]
    return actions[th.arange(actions.shape[0], device=actions.device), best]


class KernelDensityProposal:
    """A mixture of Gaussians on the sampler's pre-tanh particles, with a uniform share over the action box.

    Component ``j`` is ``N(c_j, sigma_j^2 I)`` with ``sigma_j`` the distance from ``c_j`` to the
    nearest other centre (at least :data:`MIN_BANDWIDTH`): narrow where the particles crowd, wide where
    they are sparse. The uniform share has the density of a uniform action ``a`` on ``[-1, 1]^D``
    seen in pre-tanh space, ``2^-D * prod_d (1 - tanh^2 u_d)``. Density::

        q(u) = (1 - w) * mean_j N(u; c_j, sigma_j^2 I) + w * 2^-D * prod_d (1 - tanh^2 u_d)

    :param centres: pre-tanh particles ``[batch, C, D]`` (``C >= 2``).
    :param uniform_share: ``w``, in ``(0, 1)``.
    :raises ValueError: with fewer than 2 centres or a share outside ``(0, 1)``.
    """

    def __init__(self, centres: th.Tensor, uniform_share: float = PROPOSAL_UNIFORM_SHARE):
        if centres.shape[1] < 2:
            raise ValueError(f"a kernel density proposal needs at least 2 centres, got {centres.shape[1]}")
        if not 0.0 < uniform_share < 1.0:
            raise ValueError(f"uniform_share must be in (0, 1), got {uniform_share}")
        self.centres, self.uniform_share = centres, uniform_share
        distances = th.cdist(centres, centres)  # [batch, C, C]
        distances.diagonal(dim1=-2, dim2=-1).fill_(math.inf)
        self.bandwidths = distances.min(dim=-1).values.clamp_min(MIN_BANDWIDTH)  # [batch, C]

    def sample(self, n: int) -> th.Tensor:
        """``n`` pre-tanh candidates per state, ``[batch, n, D]``: a share uniform on the box, the rest from the kernels."""
        batch, n_centres, dim = self.centres.shape
        device = self.centres.device
        component = th.randint(n_centres, (batch, n), device=device)  # [batch, n]
        centres = th.gather(self.centres, 1, component.unsqueeze(-1).expand(-1, -1, dim))  # [batch, n, D]
        bandwidths = th.gather(self.bandwidths, 1, component).unsqueeze(-1)  # [batch, n, 1]
        kernel_draws = centres + bandwidths * th.randn(batch, n, dim, device=device)
        uniform_actions = (2.0 * th.rand(batch, n, dim, device=device) - 1.0).clamp(-1 + UNIFORM_EDGE, 1 - UNIFORM_EDGE)
        from_uniform = th.rand(batch, n, 1, device=device) < self.uniform_share
        return th.where(from_uniform, th.atanh(uniform_actions), kernel_draws)

    def log_density(self, pre_tanh: th.Tensor) -> th.Tensor:
        """``log q(u)`` of pre-tanh points ``[batch, n, D]``; returns ``[batch, n]``."""
        dim = pre_tanh.shape[-1]
        squared = (pre_tanh.unsqueeze(2) - self.centres.unsqueeze(1)).pow(2).sum(-1)  # [batch, n, C]
        variances = self.bandwidths.pow(2).unsqueeze(1)  # [batch, 1, C]
        log_kernels = -0.5 * squared / variances - 0.5 * dim * th.log(2 * math.pi * variances)
        log_mixture = th.logsumexp(log_kernels, dim=-1) - math.log(self.centres.shape[1])
        log_uniform = squash_log_jacobian(pre_tanh) - dim * math.log(2.0)
        return th.logaddexp(math.log1p(-self.uniform_share) + log_mixture, math.log(self.uniform_share) + log_uniform)


def importance_resample(candidates: th.Tensor, log_weights: th.Tensor) -> th.Tensor:
    """Sampling-importance-resampling: one candidate per state, drawn with probability proportional to ``p / q``.

    :param candidates: pre-tanh candidates ``[batch, M, D]``, drawn from the proposal ``q``.
    :param log_weights: their log importance weights ``log p(u) - log q(u)``, ``[batch, M]`` (nats), with
        ``log p(u) = Q(s, tanh u) / alpha + sum_d log(1 - tanh^2 u_d)`` up to a constant; no NaN or +Inf,
        and not all -Inf at a state.
    :return: the chosen pre-tanh candidates, ``[batch, D]``.
    """
    chosen = th.distributions.Categorical(logits=log_weights).sample()  # [batch]
    return candidates[th.arange(candidates.shape[0], device=candidates.device), chosen]

"""Networks of Soft Q-Learning: the soft Q-function(s), their target, and the SVGD sampler.

Source: Haarnoja et al., ICML 2017, section 3.2 (the sampling network ``a = f_phi(xi; s)``) and
the reference code's ``StochasticNNPolicy`` (haarnoja/softqlearning). For discrete actions the
policy is the Boltzmann distribution of the soft Q-function itself (docs/method.md, "Discrete soft Q-learning").
"""

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel, BasePolicy, ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn
from torch.nn import functional as F

from sb3_sql.acting import (
    PROPOSAL_CENTRES,
    KernelDensityProposal,
    best_by_q,
    deterministic_noise,
    importance_resample,
)
from sb3_sql.checks import check_finite_acting
from sb3_sql.soft_value import (
    PROPOSAL_FIT_PARTICLES,
    VALUE_PROPOSALS,
    SquashedGaussianProposal,
    defensive_mixture_log_density,
    exact_soft_value,
    importance_sampled_soft_value,
    importance_sampled_soft_value_with_proposal,
    n_uniform_draws,
    soft_double_q_value,
)
from sb3_sql.svgd import squash_log_jacobian


def mlp_on_particles(net: nn.Module, features: th.Tensor, particles: th.Tensor, n_detached: int = 0) -> th.Tensor:
    """``net([features(s), x])`` for ``K`` particles ``x`` per state, computing the state's part once.

    The sampler (``[features, noise]``) and the soft Q-function (``[features, action]``) are evaluated
    on ``K`` particles per state. Their first layer is linear in the concatenation,
    ``W [f; x] + b = (W_f f + b) + W_x x``, so ``W_f f + b`` is computed once per state (``[batch, H]``)
    and added to every particle's ``W_x x``: the same function, without ``K`` copies of the features
    going through the widest matrix (on Humanoid-v5, 348 of the 365 input columns). Values equal
    those of the concatenated input up to float rounding. A ``net`` whose first module is not
    ``nn.Linear`` gets the concatenation.

    :param net: a network on ``[features, x]``, ``F + D`` inputs, usually an ``nn.Sequential`` MLP.
    :param features: ``[batch, F]``.
    :param particles: ``[batch, K, D]``, or ``[K, D]`` for the same particles at every state.
    :param n_detached: the first ``n_detached`` particles (of each state) are evaluated without gradient
        (SVGD's fixed particles), so a backward pass skips them; same values. The state's part is
        still computed once for all ``K``.
    :return: ``net``'s output per particle, ``[batch, K, out]``.
    """
    first = net[0] if isinstance(net, nn.Sequential) and len(net) > 0 else None
    if not isinstance(net, nn.Sequential) or not isinstance(first, nn.Linear):

        def concatenated(particles: th.Tensor) -> th.Tensor:
            if particles.dim() == 2:
                particles = particles.unsqueeze(0).expand(features.shape[0], -1, -1)
            expanded = features.unsqueeze(1).expand(-1, particles.shape[1], -1)  # [batch, K, F]
            return net(th.cat([expanded, particles], dim=-1))

        evaluate = concatenated
    else:
        n_features = features.shape[-1]
        state_part = F.linear(features, first.weight[:, :n_features], first.bias).unsqueeze(1)  # [batch, 1, H]

        def split_first_layer(particles: th.Tensor) -> th.Tensor:
            particle_part = F.linear(particles, first.weight[:, n_features:])  # [batch or 1, K, H]
            return net[1:](state_part + particle_part)

        evaluate = split_first_layer
    if n_detached == 0:
        return evaluate(particles)
    with th.no_grad():
        detached = evaluate(particles[..., :n_detached, :])
    return th.cat([detached, evaluate(particles[..., n_detached:, :])], dim=-2)


#: Initialisations of the linear layers: PyTorch's default, or the reference code's Glorot-uniform weights with zero biases.
WEIGHT_INITS = ("pytorch", "glorot")


def init_linear_layers(module: nn.Module, weight_init: str) -> None:
    """Initialise every ``nn.Linear`` of ``module`` in place.

    :param module: a network (sampler or critic).
    :param weight_init: ``"pytorch"`` keeps PyTorch's default (weights and biases uniform in
        ``+-1/sqrt(fan_in)``); ``"glorot"`` draws the weights uniform in ``+-sqrt(6 / (fan_in + fan_out))``
        (Glorot & Bengio, AISTATS 2010) and zeroes the biases, as the reference code (haarnoja/softqlearning).
    :raises ValueError: for another ``weight_init``.
    """
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")
    if weight_init == "glorot":
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)


class TemperatureMixin(nn.Module):
    """The temperature ``alpha`` of an SQL policy, held as ``log_ent_coef`` (a parameter of shape ``[1]``).

    Both policies of SQL carry it: for discrete actions it is the temperature of the Boltzmann
    policy ``softmax(Q / alpha)`` (Eq. 6), for continuous actions that of the target density
    ``exp(Q / alpha)`` the sampler is trained towards (Eq. 13). It is saved with the policy. ``SQL``
    writes it from ``ent_coef`` before each ``train()`` and ``predict()`` call, or learns it when
    ``ent_coef="auto"`` (then it requires a gradient and ``SQL.log_ent_coef`` is this tensor).

    A policy state dict without ``log_ent_coef`` (saved by a version where the continuous policy had
    none) loads: the parameter keeps its value, and ``SQL`` writes the temperature into it.
    """

    log_ent_coef: nn.Parameter

    def _init_temperature(self) -> None:
        # log(alpha), shape [1], alpha = 1 until SQL sets it; no gradient unless ent_coef="auto".
        self.log_ent_coef = nn.Parameter(th.zeros(1), requires_grad=False)

    @property
    def ent_coef(self) -> float:
        """The temperature ``alpha = exp(log_ent_coef)`` (reward units)."""
        return self.log_ent_coef.exp().item()

    def set_ent_coef(self, ent_coef: float) -> None:
        """Write the temperature: ``log_ent_coef = log(ent_coef)``, in place (an optimizer keeps its parameter).

        :param ent_coef: the temperature ``alpha`` (reward units, > 0).
        """
        self.log_ent_coef.data.fill_(np.log(ent_coef))

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        # Continuous policies saved before they held the temperature have no log_ent_coef.
        if prefix + "log_ent_coef" in missing_keys:
            missing_keys.remove(prefix + "log_ent_coef")


class SamplerNetwork(BasePolicy):
    """The sampling network of SQL: ``a = tanh(MLP([features(s), xi]))`` with ``xi ~ N(0, I_D)``.

    It is not a Gaussian policy: the noise enters the network as an input, so the action
    distribution can take any shape (several modes, for instance). SVGD trains it to sample
    ``pi(a|s) ~ exp(Q(s, a) / alpha)``.

    :param observation_space: observation space.
    :param action_space: a bounded ``Box``; actions are produced in ``(-1, 1)^D`` and rescaled by
        ``BasePolicy.unscale_action``.
    :param net_arch: hidden layer sizes.
    :param features_extractor: network extracting features from observations.
    :param features_dim: size of the extracted features.
    :param activation_fn: activation of the hidden layers.
    :param normalize_images: whether to divide image observations by 255.
    :param noise_skip: add the noise to the network's output, ``u = xi + MLP([features(s), xi])``:
        the untrained sampler then draws ``tanh(N(0, I))``, which covers the whole action box, so
        SVGD starts with particles near every mode instead of a narrow blob that falls into one
        (the reference code has no skip: ``False``).
    """

    action_space: spaces.Box

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        noise_skip: bool = False,
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
            squash_output=True,
        )
        self.net_arch = net_arch
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.action_dim = get_action_dim(self.action_space)
        self.noise_skip = noise_skip
        layers = create_mlp(features_dim + self.action_dim, self.action_dim, net_arch, activation_fn)
        self.pre_tanh_net = nn.Sequential(*layers)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                features_dim=self.features_dim,
                activation_fn=self.activation_fn,
                features_extractor=self.features_extractor,
                noise_skip=self.noise_skip,
            )
        )
        return data

    def pre_tanh_particles(
        self, obs: PyTorchObs, n_particles: int, deterministic: bool = False, n_detached: int = 0
    ) -> th.Tensor:
        """Draw ``K`` particles per state before the tanh squashing.

        :param obs: a batch of observations (``batch`` of them).
        :param n_particles: ``K``, the number of particles per state.
        :param deterministic: fix the noise at ``xi = 0`` (the high-probability input).
        :param n_detached: the first ``n_detached`` particles of each state are computed without
            gradient (SVGD's fixed particles), so the backward pass skips them; same values.
        :return: pre-tanh particles ``u``, shape ``[batch, K, D]``; the actions are ``tanh(u)``.
        """
        features = self.extract_features(obs, self.features_extractor)  # [batch, features_dim]
        noise_fn = th.zeros if deterministic else th.randn
        noise = noise_fn((features.shape[0], n_particles, self.action_dim), device=features.device)  # [batch, K, D]
        output = mlp_on_particles(self.pre_tanh_net, features, noise, n_detached=n_detached)
        return output + noise if self.noise_skip else output

    def pre_tanh_from_noise(self, obs: PyTorchObs, noise: th.Tensor) -> th.Tensor:
        """The pre-tanh particles of given noise inputs, ``[batch, K, D]``.

        :param obs: a batch of observations (``batch`` of them).
        :param noise: ``xi``, ``[K, D]`` (the same inputs at every state) or ``[batch, K, D]``.
        """
        features = self.extract_features(obs, self.features_extractor)  # [batch, features_dim]
        output = mlp_on_particles(self.pre_tanh_net, features, noise)  # [batch, K, D]
        return output + noise if self.noise_skip else output

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        """One action per state in ``(-1, 1)^D``, shape ``[batch, D]`` (``xi = 0`` if deterministic)."""
        return th.tanh(self.pre_tanh_particles(obs, 1, deterministic=deterministic)).squeeze(1)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        """The sampler alone: one draw, or with ``deterministic`` its output at ``xi = 0``.

        It has no critic, so its deterministic action is not ``SVGDPolicy``'s (the best of several
        draws by ``Q``).
        """
        return self(observation, deterministic)


class SVGDPolicy(TemperatureMixin, BasePolicy):
    """Policy of SQL: the soft Q-function(s), their target copy, and the SVGD sampler.

    The soft Q-functions are SB3's ``ContinuousCritic`` (``n_critics`` of them; the minimum is used
    wherever Q serves as a target). The temperature ``alpha`` of the target density
    ``exp(Q / alpha)`` is ``log_ent_coef`` (:class:`TemperatureMixin`). Acting draws one action from
    the sampler (or resamples it towards ``exp(Q / alpha)``, ``acting_n_candidates``); with
    ``deterministic=True`` it takes the best of ``deterministic_n_particles`` fixed draws by soft Q-value.

    :param observation_space: observation space.
    :param action_space: a bounded ``Box``.
    :param lr_schedule: learning rate schedule (one learning rate for the critic and the sampler).
    :param net_arch: hidden layers, shared list or ``dict(pi=[...], qf=[...])``;
        default ``[128, 128]`` (the reference code).
    :param activation_fn: activation of the hidden layers (default ReLU).
    :param features_extractor_class: features extractor (default ``FlattenExtractor``).
    :param features_extractor_kwargs: keyword arguments for the features extractor.
    :param normalize_images: whether to divide image observations by 255.
    :param optimizer_class: optimizer (default Adam).
    :param optimizer_kwargs: keyword arguments for the optimizer, learning rate excluded.
    :param n_critics: number of soft Q-functions (default 1, as in the reference code).
    :param share_features_extractor: share the features extractor between sampler and critic.
    :param sampler_noise_skip: the sampler adds its noise to its output (``SamplerNetwork``'s
        ``noise_skip``); ``False`` here is the reference code's sampler, and ``SQL`` turns it on
        for the models it creates (chosen on the fidelity benchmark).
    :param deterministic_n_particles: ``N``, the sampler's draws among which
        ``predict(deterministic=True)`` takes the one of highest soft Q-value (minimum over the
        critics): the policy's mode rather than the sampler's output at ``xi = 0``, which can fall
        between modes. The ``N`` noise inputs are fixed (``xi = 0`` and ``N - 1`` seeded normal draws,
        ``sb3_sql.acting.deterministic_noise``), so the action repeats exactly. ``1``: the output at
        ``xi = 0`` alone (the earlier behaviour). Default 32 (docs, "Acting").
    :param acting_n_candidates: ``M``; with ``M > 0`` a stochastic action is corrected at the acted
        state by sampling-importance-resampling (``sb3_sql.acting``): ``M`` candidates from a kernel
        density proposal on 32 of the sampler's particles, one kept with probability proportional to
        ``exp(Q(s, a) / alpha)`` over the proposal's exact density. It costs one sampler pass of 32
        particles and one critic pass of ``M`` actions per state. ``0`` (the policy's default, kept
        for models saved before ``SQL`` gave new models ``M = 64``; docs, "Acting"): one draw of the
        sampler, as in the paper and the reference code.
    :param weight_init: initialisation of the sampler's and the critic's linear layers: ``"pytorch"``
        (default) or ``"glorot"``, the reference code's (:func:`init_linear_layers`).
    :raises ValueError: if ``n_critics < 1``, ``deterministic_n_particles < 1``, ``acting_n_candidates < 0``
        or for an unknown ``weight_init``.
    """

    actor: SamplerNetwork
    critic: ContinuousCritic
    critic_target: ContinuousCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 1,
        share_features_extractor: bool = False,
        sampler_noise_skip: bool = False,
        deterministic_n_particles: int = 32,
        acting_n_candidates: int = 0,
        weight_init: str = "pytorch",
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=normalize_images,
        )
        if n_critics < 1:
            raise ValueError(f"n_critics must be at least 1, got {n_critics}")
        if deterministic_n_particles < 1:
            raise ValueError(f"deterministic_n_particles must be at least 1, got {deterministic_n_particles}")
        if acting_n_candidates < 0:
            raise ValueError(f"acting_n_candidates must be 0 (off) or positive, got {acting_n_candidates}")
        self.deterministic_n_particles = deterministic_n_particles
        self.acting_n_candidates = acting_n_candidates
        self.weight_init = weight_init
        if net_arch is None:
            net_arch = [128, 128]
        sampler_arch, critic_arch = get_actor_critic_arch(net_arch)

        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.n_critics = n_critics
        self.share_features_extractor = share_features_extractor
        self.sampler_noise_skip = sampler_noise_skip
        net_args = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "activation_fn": activation_fn,
            "normalize_images": normalize_images,
        }
        self.sampler_kwargs = {**net_args, "net_arch": sampler_arch, "noise_skip": sampler_noise_skip}
        self.critic_kwargs = {
            **net_args,
            "net_arch": critic_arch,
            "n_critics": n_critics,
            "share_features_extractor": share_features_extractor,
        }
        self._init_temperature()
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_sampler()
        init_linear_layers(self.actor, self.weight_init)
        self.actor.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

        if self.share_features_extractor:
            self.critic = self.make_critic(features_extractor=self.actor.features_extractor)
            # The shared extractor is trained by the sampler loss only, as in SAC.
            critic_parameters = [param for name, param in self.critic.named_parameters() if "features_extractor" not in name]
        else:
            self.critic = self.make_critic(features_extractor=None)
            critic_parameters = list(self.critic.parameters())
        init_linear_layers(self.critic, self.weight_init)
        self.critic.optimizer = self.optimizer_class(critic_parameters, lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

        # The target never shares its features extractor; it starts as a copy of the critic.
        self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.set_training_mode(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                activation_fn=self.activation_fn,
                n_critics=self.n_critics,
                share_features_extractor=self.share_features_extractor,
                sampler_noise_skip=self.sampler_noise_skip,
                deterministic_n_particles=self.deterministic_n_particles,
                acting_n_candidates=self.acting_n_candidates,
                weight_init=self.weight_init,
                lr_schedule=self._dummy_schedule,
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                features_extractor_class=self.features_extractor_class,
                features_extractor_kwargs=self.features_extractor_kwargs,
            )
        )
        return data

    def make_sampler(self, features_extractor: BaseFeaturesExtractor | None = None) -> SamplerNetwork:
        sampler_kwargs = self._update_features_extractor(self.sampler_kwargs, features_extractor)
        return SamplerNetwork(**sampler_kwargs).to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ContinuousCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return ContinuousCritic(**critic_kwargs).to(self.device)

    @staticmethod
    def particle_q_values(critic: ContinuousCritic, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """Soft Q-values of ``K`` actions per state, minimum over the critics.

        The observation features, and their part of the first layer, are computed once per state,
        not once per particle (:func:`mlp_on_particles`).

        :param critic: the critic or its target.
        :param obs: a batch of observations (``batch`` of them).
        :param actions: actions in ``[-1, 1]``, shape ``[batch, K, D]`` or ``[K, D]`` (the same
            actions for every state).
        :return: ``min_i Q_i(s, a_k)``, shape ``[batch, K]``.
        """
        with th.set_grad_enabled(th.is_grad_enabled() and not critic.share_features_extractor):
            features = critic.extract_features(obs, critic.features_extractor)  # [batch, F]
        q_values = th.stack([mlp_on_particles(q_net, features, actions).squeeze(-1) for q_net in critic.q_networks])
        # q_values: [n_critics, batch, K]
        return q_values.min(dim=0).values

    def network_optimizers(self) -> list[th.optim.Optimizer]:
        """The optimizers of the networks, whose learning rate follows the schedule: the sampler's and the critic's."""
        return [self.actor.optimizer, self.critic.optimizer]

    def temperature_for_update(self, ent_coef: float) -> float:
        """The temperature a gradient step computes with: ``ent_coef`` itself, a float (reward units).

        ``log_ent_coef`` holds the same temperature in float32, whose exponential can differ from
        ``ent_coef`` in the last float32 digit; the importance-sampled soft value and the Stein
        direction use the float, so a fixed ``ent_coef`` gives exactly its own numbers.

        :param ent_coef: the temperature now (``SQL.current_ent_coef()``).
        """
        return ent_coef

    def soft_value(
        self,
        critic_target: ContinuousCritic,
        observations: PyTorchObs,
        ent_coef: float | th.Tensor,
        n_particles: int = 16,
        soft_double_q: bool = False,
        proposal: str = "uniform",
        uniform_share: float = 0.25,
    ) -> th.Tensor:
        """The soft value of states, importance sampled with ``M`` actions (Eq. 10), without gradient.

        ``proposal="uniform"`` (the paper): one set of ``M`` actions is drawn uniformly on ``[-1, 1]^D``
        for the whole batch (``th.rand``) and evaluated by ``critic_target`` (the minimum over twin
        critics)::

            V(s) = alpha * [ logsumexp_j(Q(s, a_j) / alpha) - log M + D * log 2 ]

        ``proposal="sampler"``: a defensive mixture per state. ``M_u = round(uniform_share * M)``
        (at least one) actions are drawn uniformly and the other ``M - M_u`` from a
        :class:`~sb3_sql.soft_value.SquashedGaussianProposal` fitted to
        :data:`~sb3_sql.soft_value.PROPOSAL_FIT_PARTICLES` pre-tanh particles of the sampler at that
        state; every action is weighted by the mixture density
        ``q(a) = (M_u / M) * 2^-D + (1 - M_u / M) * p_fit(a)`` (balance heuristic)::

            V(s) = alpha * [ logsumexp_j(Q(s, a_j) / alpha - log q(a_j)) - log M ]

        When all ``M`` draws are uniform (``M_u = M``) this is the uniform estimate above, drawn the same way.

        :param critic_target: the target soft Q-function(s).
        :param observations: states, ``batch`` of them (the next states of a minibatch).
        :param ent_coef: the temperature ``alpha`` (reward units).
        :param n_particles: ``M``, the actions drawn per state (``SQL``'s ``value_n_particles``).
        :param soft_double_q: must be False (discrete actions only).
        :param proposal: ``"uniform"`` or ``"sampler"`` (``SQL``'s ``value_proposal``).
        :param uniform_share: the uniform share of a ``"sampler"`` proposal's draws, in ``(0, 1]``
            (``SQL``'s ``value_proposal_uniform_share``).
        :return: ``V(s)``, shape ``[batch, 1]``, in reward units.
        :raises ValueError: if ``soft_double_q`` is True, for an unknown ``proposal``, or (``"sampler"``)
            a ``uniform_share`` outside ``(0, 1]``.
        """
        if soft_double_q:
            raise ValueError("soft_double_q applies to discrete actions only")
        if proposal not in VALUE_PROPOSALS:
            raise ValueError(f"proposal must be one of {VALUE_PROPOSALS}, got {proposal!r}")
        action_dim = self.actor.action_dim
        n_uniform = n_particles if proposal == "uniform" else n_uniform_draws(n_particles, uniform_share)
        with th.no_grad():
            if n_uniform == n_particles:
                value_actions = 2.0 * th.rand(n_particles, action_dim, device=self.device) - 1.0  # [M, D]
                next_q_values = self.particle_q_values(critic_target, observations, value_actions)  # [batch, M]
                return importance_sampled_soft_value(next_q_values, ent_coef, action_dim).unsqueeze(-1)
            # Defensive mixture: M_u uniform actions and M - M_u from a Gaussian fitted to the sampler, per state.
            sampler_particles = self.actor.pre_tanh_particles(observations, PROPOSAL_FIT_PARTICLES)  # [batch, K, D]
            fitted = SquashedGaussianProposal(sampler_particles)
            batch_size = sampler_particles.shape[0]
            uniform_actions = 2.0 * th.rand(batch_size, n_uniform, action_dim, device=self.device) - 1.0  # [batch, M_u, D]
            fitted_actions = th.tanh(fitted.sample_pre_tanh(n_particles - n_uniform))  # [batch, M - M_u, D]
            value_actions = th.cat([uniform_actions, fitted_actions], dim=1)  # [batch, M, D]
            log_proposal_density = defensive_mixture_log_density(
                fitted.log_density(value_actions), action_dim, n_uniform / n_particles
            )  # [batch, M]
            next_q_values = self.particle_q_values(critic_target, observations, value_actions)  # [batch, M]
            return importance_sampled_soft_value_with_proposal(next_q_values, log_proposal_density, ent_coef).unsqueeze(-1)

    def critic_q_values(
        self, critic: ContinuousCritic, observations: PyTorchObs, actions: th.Tensor
    ) -> tuple[tuple[th.Tensor, ...], None]:
        """The soft Q-values of a minibatch's actions, for the critic loss (Eq. 11), with gradient.

        :param critic: the soft Q-function(s).
        :param observations: states, ``batch`` of them.
        :param actions: the actions taken there, scaled to ``[-1, 1]``, shape ``[batch, D]``.
        :return: ``Q_i(s, a)``, one ``[batch, 1]`` tensor per critic, and None (the policy is the
            sampler, not a function of these values).
        """
        return critic(observations, actions), None

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        """One action per state in ``(-1, 1)^D``, ``[batch, D]``.

        Deterministic: the best of ``deterministic_n_particles`` fixed draws by soft Q-value
        (the sampler's output at ``xi = 0`` when it is 1). Stochastic: one draw of the sampler, or
        with ``acting_n_candidates > 0`` a draw resampled towards ``exp(Q(s, .) / alpha)``.
        """
        if deterministic and self.deterministic_n_particles > 1:
            noise = deterministic_noise(self.deterministic_n_particles, self.actor.action_dim).to(self.device)
            actions = th.tanh(self.actor.pre_tanh_from_noise(observation, noise))  # [batch, N, D]
            return best_by_q(actions, self.particle_q_values(self.critic, observation, actions))
        if deterministic or self.acting_n_candidates == 0:
            return self.actor(observation, deterministic)
        return th.tanh(self.resampled_pre_tanh(observation))

    def resampled_pre_tanh(self, observation: PyTorchObs) -> th.Tensor:
        """One pre-tanh action per state by sampling-importance-resampling towards ``exp(Q(s, .) / alpha)``, ``[batch, D]``.

        One of the ``acting_n_candidates`` candidates of :meth:`resampling_candidates` per state, drawn
        with probability proportional to its importance weight.

        :raises FloatingPointError: if an importance weight is not finite (``sb3_sql.checks.check_finite_acting``).
        """
        candidates, log_weights = self.resampling_candidates(observation, self.acting_n_candidates)
        parameters = {"critic": self.critic.parameters(), "sampler": self.actor.parameters()}
        check_finite_acting(log_weights, observation, parameters, self.log_ent_coef.exp())
        return importance_resample(candidates, log_weights)

    def resampling_candidates(self, observation: PyTorchObs, n_candidates: int) -> tuple[th.Tensor, th.Tensor]:
        """Candidates of the resampling policy at each state, with their log importance weights.

        ``n_candidates`` pre-tanh candidates ``u`` from a :class:`~sb3_sql.acting.KernelDensityProposal`
        ``q`` on :data:`~sb3_sql.acting.PROPOSAL_CENTRES` sampler particles; the target is
        ``exp(Q(s, tanh u) / alpha) * prod_d (1 - tanh^2 u_d)`` (``Q``: the minimum over the critics;
        ``alpha``: the policy's temperature ``log_ent_coef``), i.e. ``exp(Q(s, a) / alpha)`` seen in
        pre-tanh space (Haarnoja et al., ICML 2017, Eq. 7; Rubin, 1988, for the resampling).

        :param observation: states, batch ``B``.
        :param n_candidates: ``M`` (at least 1).
        :return: the candidates ``[B, M, D]`` (pre-tanh) and their log importance weights
            ``log p(u) - log q(u)``, ``[B, M]`` (nats; ``p`` the target, unnormalised).
        """
        proposal = KernelDensityProposal(self.actor.pre_tanh_particles(observation, PROPOSAL_CENTRES))
        candidates = proposal.sample(n_candidates)  # [B, M, D]
        q_values = self.particle_q_values(self.critic, observation, th.tanh(candidates))  # [B, M]
        log_target = q_values / self.log_ent_coef.exp() + squash_log_jacobian(candidates)
        return candidates, log_target - proposal.log_density(candidates)

    def set_training_mode(self, mode: bool) -> None:
        self.actor.set_training_mode(mode)
        self.critic.set_training_mode(mode)
        self.training = mode


class CnnSVGDPolicy(SVGDPolicy):
    """``SVGDPolicy`` for image observations: SB3's ``NatureCNN`` features extractor by default.

    Same arguments as :class:`SVGDPolicy`.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class MultiInputSVGDPolicy(SVGDPolicy):
    """``SVGDPolicy`` for ``Dict`` observations: SB3's ``CombinedExtractor`` by default.

    Same arguments as :class:`SVGDPolicy`.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


MlpPolicy = SVGDPolicy


class DiscreteCritic(BaseModel):
    """Soft Q-functions of a discrete action space: ``Q(s, .)`` for all ``A`` actions at once.

    SB3's ``ContinuousCritic`` layout (``n_critics`` heads on one features extractor, so the
    features are computed once per state) with DQN's output layer (one value per action).

    :param observation_space: observation space.
    :param action_space: a ``Discrete`` space with ``A`` actions.
    :param net_arch: hidden layer sizes of each head.
    :param features_extractor: network extracting features from observations.
    :param features_dim: size of the extracted features.
    :param activation_fn: activation of the hidden layers.
    :param normalize_images: whether to divide image observations by 255.
    :param n_critics: number of soft Q-functions.
    """

    action_space: spaces.Discrete
    features_extractor: BaseFeaturesExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 1,
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        self.n_critics = n_critics
        n_actions = int(action_space.n)
        self.q_networks = nn.ModuleList(
            nn.Sequential(*create_mlp(features_dim, n_actions, net_arch, activation_fn)) for _ in range(n_critics)
        )

    def forward(self, obs: PyTorchObs) -> tuple[th.Tensor, ...]:
        """The soft Q-values of every action, one ``[batch, A]`` tensor per critic."""
        features = self.extract_features(obs, self.features_extractor)
        return tuple(q_net(features) for q_net in self.q_networks)


class SoftQPolicy(TemperatureMixin, BasePolicy):
    """Policy of SQL for discrete actions: the Boltzmann policy ``softmax(Q(s, .) / alpha)``.

    No sampler is needed: the soft value (Haarnoja et al., 2017, Eq. 5) and the policy (Eq. 6) are
    exact for ``A`` actions (docs/method.md, "Discrete soft Q-learning"). The policy holds the soft
    Q-function(s) (a :class:`DiscreteCritic`), their target copy, and the temperature ``alpha`` as
    ``log_ent_coef`` (:class:`TemperatureMixin`), so that a saved policy acts on its own.
    Acting samples from ``softmax(min_i Q_i(s, .) / alpha)``; ``deterministic=True`` takes the argmax.

    :param observation_space: observation space.
    :param action_space: a ``Discrete`` space.
    :param lr_schedule: learning rate schedule of the soft Q-function(s).
    :param net_arch: hidden layers of each soft Q-function; default ``[128, 128]`` (the reference
        code's size for continuous actions).
    :param activation_fn: activation of the hidden layers (default ReLU).
    :param features_extractor_class: features extractor (default ``FlattenExtractor``).
    :param features_extractor_kwargs: keyword arguments for the features extractor.
    :param normalize_images: whether to divide image observations by 255.
    :param optimizer_class: optimizer (default Adam).
    :param optimizer_kwargs: keyword arguments for the optimizer, learning rate excluded.
    :param n_critics: number of soft Q-functions (default 1); with 2, targets use the minimum or
        the soft double-Q estimate (``SQL(soft_double_q=True)``).
    :param weight_init: initialisation of the linear layers: ``"pytorch"`` (default) or ``"glorot"``,
        the reference code's (:func:`init_linear_layers`).
    :raises ValueError: if ``n_critics < 1`` or for an unknown ``weight_init``.
    """

    action_space: spaces.Discrete
    critic: DiscreteCritic
    critic_target: DiscreteCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 1,
        weight_init: str = "pytorch",
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=normalize_images,
        )
        if n_critics < 1:
            raise ValueError(f"n_critics must be at least 1, got {n_critics}")
        self.net_arch = [128, 128] if net_arch is None else net_arch
        self.activation_fn = activation_fn
        self.n_critics = n_critics
        self.weight_init = weight_init
        self.critic_kwargs = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "net_arch": self.net_arch,
            "activation_fn": activation_fn,
            "normalize_images": normalize_images,
            "n_critics": n_critics,
        }
        self._init_temperature()
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.critic = self.make_critic()
        init_linear_layers(self.critic, self.weight_init)
        self.critic.optimizer = self.optimizer_class(self.critic.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
        # The target has its own features extractor; it starts as a copy of the critic.
        self.critic_target = self.make_critic()
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.set_training_mode(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                activation_fn=self.activation_fn,
                n_critics=self.n_critics,
                weight_init=self.weight_init,
                lr_schedule=self._dummy_schedule,
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                features_extractor_class=self.features_extractor_class,
                features_extractor_kwargs=self.features_extractor_kwargs,
            )
        )
        return data

    def make_critic(self) -> DiscreteCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, None)
        return DiscreteCritic(**critic_kwargs).to(self.device)

    def q_values(self, obs: PyTorchObs) -> th.Tensor:
        """``min_i Q_i(s, .)`` over the critics, shape ``[batch, A]``."""
        return th.stack(self.critic(obs)).min(dim=0).values

    def network_optimizers(self) -> list[th.optim.Optimizer]:
        """The optimizers of the networks, whose learning rate follows the schedule: the critic's."""
        return [self.critic.optimizer]

    def temperature_for_update(self, ent_coef: float) -> th.Tensor:
        """The temperature a gradient step computes with: ``exp(log_ent_coef)``, shape ``[1]`` (reward units).

        It is the temperature the Boltzmann policy acts with (``SQL`` writes ``log_ent_coef`` from
        ``ent_coef`` before each ``train()``, or learns it), not the float ``ent_coef``: the two can
        differ in the last float32 digit.

        :param ent_coef: the temperature now (``SQL.current_ent_coef()``), held by ``log_ent_coef``.
        """
        return self.log_ent_coef.detach().exp()

    def soft_value(
        self,
        critic_target: DiscreteCritic,
        observations: PyTorchObs,
        ent_coef: float | th.Tensor,
        n_particles: int = 16,
        soft_double_q: bool = False,
        proposal: str = "uniform",
        uniform_share: float = 0.25,
    ) -> th.Tensor:
        """The exact soft value of states ``V(s) = alpha * logsumexp_a(Q(s, a) / alpha)`` (Eq. 5), without gradient.

        ``Q`` is the minimum over the target critics, or with ``soft_double_q`` the soft double-Q
        estimate: the first target critic's Boltzmann policy evaluated by the second
        (``sb3_sql.soft_value.soft_double_q_value``).

        :param critic_target: the target soft Q-function(s).
        :param observations: states, ``batch`` of them (the next states of a minibatch).
        :param ent_coef: the temperature ``alpha`` (reward units).
        :param n_particles: unused (the sum over the ``A`` actions is exact).
        :param proposal: unused (no sampling).
        :param uniform_share: unused (no sampling).
        :param soft_double_q: use the soft double-Q estimate (needs two critics).
        :return: ``V(s)``, shape ``[batch, 1]``, in reward units.
        """
        with th.no_grad():
            next_q_values = critic_target(observations)  # one [batch, A] per critic
            if soft_double_q:
                next_soft_value = soft_double_q_value(next_q_values[0], next_q_values[1], ent_coef)
            else:
                next_soft_value = exact_soft_value(th.stack(next_q_values).min(dim=0).values, ent_coef)
            return next_soft_value.unsqueeze(-1)

    def critic_q_values(
        self, critic: DiscreteCritic, observations: PyTorchObs, actions: th.Tensor
    ) -> tuple[list[th.Tensor], th.Tensor]:
        """The soft Q-values of a minibatch's actions, for the critic loss (Eq. 7), and of all actions.

        :param critic: the soft Q-function(s).
        :param observations: states, ``batch`` of them.
        :param actions: the indices of the actions taken there, shape ``[batch, 1]``.
        :return: ``Q_i(s, a)``, one ``[batch, 1]`` tensor per critic, with gradient; and
            ``min_i Q_i(s, .)``, shape ``[batch, A]``, without gradient: the Boltzmann policy's
            energies at these states (``boltzmann_entropy``).
        """
        all_q_values = critic(observations)  # one [batch, A] per critic
        taken = [q_values.gather(1, actions.long()) for q_values in all_q_values]
        return taken, th.stack(all_q_values).detach().min(dim=0).values

    @staticmethod
    def boltzmann_entropy(q_values: th.Tensor, ent_coef: float | th.Tensor) -> th.Tensor:
        """The exact entropy of the Boltzmann policy ``softmax(Q(s, .) / alpha)`` (Eq. 6) at each state.

        :param q_values: ``Q(s, .)``, shape ``[batch, A]``.
        :param ent_coef: the temperature ``alpha`` (reward units).
        :return: the entropies, shape ``[batch]`` (nats).
        """
        # No argument check (a device read per call): non-finite logits give a non-finite entropy, which the
        # temperature step's finite check refuses.
        return th.distributions.Categorical(logits=q_values / ent_coef, validate_args=False).entropy()

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        q_values = self.q_values(observation)
        if deterministic:
            return q_values.argmax(dim=1)
        # Boltzmann policy pi(a|s) = softmax(Q(s, .) / alpha) (Eq. 6).
        return th.distributions.Categorical(logits=q_values / self.log_ent_coef.exp()).sample()

    def set_training_mode(self, mode: bool) -> None:
        self.critic.set_training_mode(mode)
        self.training = mode


class CnnSoftQPolicy(SoftQPolicy):
    """``SoftQPolicy`` for image observations: SB3's ``NatureCNN`` features extractor by default.

    Same arguments as :class:`SoftQPolicy`.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Discrete, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class MultiInputSoftQPolicy(SoftQPolicy):
    """``SoftQPolicy`` for ``Dict`` observations: SB3's ``CombinedExtractor`` by default.

    Same arguments as :class:`SoftQPolicy`.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Discrete, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

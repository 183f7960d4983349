"""Networks of Soft Q-Learning: the soft Q-function(s), their target, and the SVGD sampler.

Source: Haarnoja et al., ICML 2017, section 3.2 (the sampling network ``a = f_phi(xi; s)``) and
the reference code's ``StochasticNNPolicy`` (haarnoja/softqlearning). For discrete actions the
policy is the Boltzmann distribution of the soft Q-function itself (docs/method.md, "Discrete soft Q-learning").
"""

from typing import Any

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
        features = features.unsqueeze(1).expand(-1, n_particles, -1)  # [batch, K, features_dim]
        noise_shape = (*features.shape[:-1], self.action_dim)
        noise_fn = th.zeros if deterministic else th.randn
        noise = noise_fn(noise_shape, device=features.device)
        net_input = th.cat([features, noise], dim=-1)  # [batch, K, features_dim + D]
        pre_tanh = self._pre_tanh
        if n_detached == 0:
            return pre_tanh(net_input, noise)
        with th.no_grad():
            detached = pre_tanh(net_input[:, :n_detached], noise[:, :n_detached])
        return th.cat([detached, pre_tanh(net_input[:, n_detached:], noise[:, n_detached:])], dim=1)

    def _pre_tanh(self, net_input: th.Tensor, noise: th.Tensor) -> th.Tensor:
        """The network's output ``[..., D]``, plus the noise ``[..., D]`` with ``noise_skip``."""
        output = self.pre_tanh_net(net_input)
        return output + noise if self.noise_skip else output

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        """One action per state in ``(-1, 1)^D``, shape ``[batch, D]`` (``xi = 0`` if deterministic)."""
        return th.tanh(self.pre_tanh_particles(obs, 1, deterministic=deterministic)).squeeze(1)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self(observation, deterministic)


class SVGDPolicy(BasePolicy):
    """Policy of SQL: the soft Q-function(s), their target copy, and the SVGD sampler.

    The soft Q-functions are SB3's ``ContinuousCritic`` (``n_critics`` of them; the minimum is used
    wherever Q serves as a target). Acting draws one action from the sampler; with
    ``deterministic=True`` the sampler's noise is fixed at 0.

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
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_sampler()
        self.actor.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

        if self.share_features_extractor:
            self.critic = self.make_critic(features_extractor=self.actor.features_extractor)
            # The shared extractor is trained by the sampler loss only, as in SAC.
            critic_parameters = [param for name, param in self.critic.named_parameters() if "features_extractor" not in name]
        else:
            self.critic = self.make_critic(features_extractor=None)
            critic_parameters = list(self.critic.parameters())
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

        The observation features are computed once per state, not once per particle.

        :param critic: the critic or its target.
        :param obs: a batch of observations (``batch`` of them).
        :param actions: actions in ``[-1, 1]``, shape ``[batch, K, D]`` or ``[K, D]`` (the same
            actions for every state).
        :return: ``min_i Q_i(s, a_k)``, shape ``[batch, K]``.
        """
        with th.set_grad_enabled(th.is_grad_enabled() and not critic.share_features_extractor):
            features = critic.extract_features(obs, critic.features_extractor)  # [batch, F]
        if actions.dim() == 2:
            actions = actions.unsqueeze(0).expand(features.shape[0], -1, -1)
        features = features.unsqueeze(1).expand(-1, actions.shape[1], -1)  # [batch, K, F]
        q_input = th.cat([features, actions], dim=-1)
        q_values = th.stack([q_net(q_input).squeeze(-1) for q_net in critic.q_networks])  # [n_critics, batch, K]
        return q_values.min(dim=0).values

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.actor(observation, deterministic)

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


class SoftQPolicy(BasePolicy):
    """Policy of SQL for discrete actions: the Boltzmann policy ``softmax(Q(s, .) / alpha)``.

    No sampler is needed: the soft value (Haarnoja et al., 2017, Eq. 5) and the policy (Eq. 6) are
    exact for ``A`` actions (docs/method.md, "Discrete soft Q-learning"). The policy holds the soft
    Q-function(s) (a :class:`DiscreteCritic`), their target copy, and the temperature ``alpha`` as
    ``log_ent_coef`` (learnt by the algorithm when ``ent_coef="auto"``, fixed otherwise), so that a
    saved policy acts on its own.
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
    :raises ValueError: if ``n_critics < 1``.
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
        self.critic_kwargs = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "net_arch": self.net_arch,
            "activation_fn": activation_fn,
            "normalize_images": normalize_images,
            "n_critics": n_critics,
        }
        # log(alpha), shape [1]: set by the algorithm, saved with the policy, learnt when ent_coef="auto".
        self.log_ent_coef = nn.Parameter(th.zeros(1), requires_grad=False)
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.critic = self.make_critic()
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

    @property
    def ent_coef(self) -> float:
        """The temperature ``alpha`` used for acting."""
        return self.log_ent_coef.exp().item()

    def q_values(self, obs: PyTorchObs) -> th.Tensor:
        """``min_i Q_i(s, .)`` over the critics, shape ``[batch, A]``."""
        return th.stack(self.critic(obs)).min(dim=0).values

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

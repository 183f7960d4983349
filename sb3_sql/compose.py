"""Composition of maximum-entropy policies: a new SVGD sampler for the sum of soft Q-functions.

Source: T. Haarnoja, V. Pong, A. Zhou, M. Dalal, P. Abbeel, S. Levine, "Composable Deep
Reinforcement Learning for Robotic Manipulation", ICRA 2018 (arXiv:1803.06773), section IV:
the soft Q-function of the combined task is approximated by the (weighted) mean of the
constituents' soft Q-functions, and a policy for it is obtained by training a new sampler
against that energy with the SVGD update of SQL (Haarnoja et al., ICML 2017, Eq. 13 and 14),
with the critics frozen and no new environment interaction.
"""

import warnings
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.policies import BaseModel, ContinuousCritic
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_sql.policies import SVGDPolicy
from sb3_sql.sql import SQL

try:  # as SB3's ProgressBarCallback
    from tqdm import TqdmExperimentalWarning

    warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)
    from tqdm.rich import tqdm
except ImportError:
    tqdm = None


class ComposedCritic(BaseModel):
    """The energy of a composed task: ``Q(s, a) = sum_i w_i min_j Q_ij(s, a)``.

    :param observation_space: observation space.
    :param action_space: action space.
    :param critics: the constituents' soft Q-functions (SB3 ``ContinuousCritic``).
    :param weights: one weight per critic.
    """

    share_features_extractor = False  # each constituent keeps its own features extractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        critics: Sequence[ContinuousCritic],
        weights: Sequence[float],
    ):
        super().__init__(observation_space, action_space)
        self.critics = nn.ModuleList(critics)
        self.weights = list(weights)

    def forward(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        """The composed soft Q-value, shape ``[batch, 1]``, as a 1-tuple like ``ContinuousCritic``."""
        q_values = [th.min(th.cat(critic(obs, actions), dim=1), dim=1, keepdim=True).values for critic in self.critics]
        return (th.stack([weight * q for weight, q in zip(self.weights, q_values, strict=True)]).sum(dim=0),)


class ComposedPolicy(SVGDPolicy):
    """An SQL policy whose soft Q-function is a ``ComposedCritic`` (made by ``sb3_sql.compose``).

    It is rebuilt from its constructor parameters when a composed model is loaded; ``constituents``
    holds the constructor parameters of each constituent policy (spaces and learning rate schedule
    excluded), and the other parameters describe the new sampler as in ``SVGDPolicy``.

    :param observation_space: observation space.
    :param action_space: a bounded ``Box``.
    :param lr_schedule: learning rate schedule.
    :param constituents: one dict of ``SVGDPolicy`` keyword arguments per constituent.
    :param weights: one weight per constituent.
    :param kwargs: ``SVGDPolicy`` keyword arguments for the sampler (``share_features_extractor``
        is not supported: the composed critic has its own extractors).
    :raises ValueError: if ``constituents`` and ``weights`` differ in length or are empty.
    """

    critic: ComposedCritic  # type: ignore[assignment]
    critic_target: ComposedCritic  # type: ignore[assignment]

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        constituents: Sequence[dict[str, Any]] = (),
        weights: Sequence[float] = (),
        **kwargs: Any,
    ):
        if len(constituents) == 0 or len(constituents) != len(weights):
            raise ValueError(
                f"ComposedPolicy needs one weight per constituent and at least one constituent, got "
                f"{len(constituents)} constituents and {len(weights)} weights; build it with sb3_sql.compose."
            )
        self.constituents = [dict(constituent) for constituent in constituents]
        self.weights = [float(weight) for weight in weights]
        super().__init__(observation_space, action_space, lr_schedule, **{**kwargs, "share_features_extractor": False})

    def make_critic(self, features_extractor: nn.Module | None = None) -> ComposedCritic:  # type: ignore[override]
        assert isinstance(self.action_space, spaces.Box)
        critics = [
            SVGDPolicy(self.observation_space, self.action_space, self._dummy_schedule, **constituent).critic  # type: ignore[arg-type]
            for constituent in self.constituents
        ]
        return ComposedCritic(self.observation_space, self.action_space, critics, self.weights).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(dict(constituents=self.constituents, weights=self.weights))
        return data

    @staticmethod
    def particle_q_values(critic: ComposedCritic, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:  # type: ignore[override]
        """``sum_i w_i min_j Q_ij(s, a_k)``, shape ``[batch, K]`` (see ``SVGDPolicy.particle_q_values``)."""
        return th.stack(
            [
                weight * SVGDPolicy.particle_q_values(cast(ContinuousCritic, constituent), obs, actions)
                for weight, constituent in zip(critic.weights, critic.critics, strict=True)
            ]
        ).sum(dim=0)


def _constituent_parameters(policy: SVGDPolicy) -> dict[str, Any]:
    """The constructor parameters that rebuild ``policy``'s soft Q-function (no spaces, no schedule)."""
    if isinstance(policy, ComposedPolicy):
        raise ValueError("compose() takes SQL models with an SVGDPolicy, not composed models: compose their constituents")
    parameters = policy._get_constructor_parameters()
    for key in ("observation_space", "action_space", "lr_schedule", "squash_output"):
        parameters.pop(key, None)
    return parameters


def _checked_inputs(
    models: Sequence[SQL],
    weights: Sequence[float] | None,
    observations: np.ndarray | None,
    gradient_steps: int,
    batch_size: int | None,
    progress_bar: bool,
) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray | None, int]:
    """compose()'s checks; returns the constituents' policy parameters, the weights, the observations as float32
    (or None) and the batch size."""
    if len(models) == 0:
        raise ValueError("compose() needs at least one SQL model, got none")
    first = models[0]
    for index, model in enumerate(models):
        if not isinstance(model, SQL):
            raise ValueError(f"compose() takes SQL models, got {type(model).__name__} at position {index}")
        if model.observation_space != first.observation_space or model.action_space != first.action_space:
            raise ValueError(
                f"compose() needs models of the same spaces: model 0 has observation space {first.observation_space} "
                f"and action space {first.action_space}, model {index} has {model.observation_space} and "
                f"{model.action_space}. Soft Q-functions of different spaces cannot be added."
            )
    if not isinstance(first.observation_space, spaces.Box):
        raise ValueError(f"compose() supports Box observation spaces, got {first.observation_space}")
    constituents = [_constituent_parameters(cast(SVGDPolicy, model.policy)) for model in models]
    if weights is None:
        weights = [1.0 / len(models)] * len(models)
    weight_array = np.asarray(weights, dtype=np.float64)
    valid = np.all(np.isfinite(weight_array)) and np.all(weight_array >= 0) and weight_array.sum() > 0
    if weight_array.shape != (len(models),) or not valid:
        raise ValueError(
            f"weights must be {len(models)} non-negative finite numbers (one per model), not all 0, got {weights!r}"
        )
    if gradient_steps < 1:
        raise ValueError(f"gradient_steps must be at least 1, got {gradient_steps}")
    batch_size = first.batch_size if batch_size is None else batch_size
    if batch_size < len(models):
        raise ValueError(f"batch_size={batch_size} must be at least the number of models ({len(models)}): one state from each")
    if observations is None:
        for index, model in enumerate(models):
            if model.replay_buffer is None or model.replay_buffer.size() == 0:
                raise ValueError(
                    f"model {index} has no replay buffer data to draw states from: call its load_replay_buffer(path) "
                    "after SQL.load, or pass observations=array of shape [N, *observation_shape]"
                )
    else:
        observations = np.asarray(observations, dtype=np.float32)
        if observations.ndim < 2 or observations.shape[1:] != first.observation_space.shape or len(observations) == 0:
            raise ValueError(
                f"observations must have shape [N, *{first.observation_space.shape}] with N >= 1, got {observations.shape}"
            )
    if progress_bar and tqdm is None:
        raise ImportError("progress_bar=True needs tqdm and rich: pip install tqdm rich (or stable_baselines3[extra])")

    return constituents, weight_array, observations, batch_size


def compose(
    models: Sequence[SQL],
    weights: Sequence[float] | None = None,
    observations: np.ndarray | None = None,
    gradient_steps: int = 2000,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    ent_coef: float | None = None,
    seed: int | None = None,
    progress_bar: bool = False,
    device: th.device | str = "auto",
) -> SQL:
    """A new SQL model for the combined task of ``models``: energy ``sum_i w_i Q_i``, sampler trained by SVGD.

    The composed soft Q-function is ``Q(s, a) = sum_i w_i min_j Q_ij(s, a)`` over copies of the
    constituents' critics (and targets), frozen during composition: only a new sampler is
    trained, with SQL's amortized SVGD update (``SQL.sampler_loss``, Eq. 13 and 14 of Haarnoja et
    al., ICML 2017) against ``exp(Q / alpha)``, on states drawn in equal shares from the
    constituents' replay buffers, or uniformly from ``observations``; there is no environment
    interaction. Source: Haarnoja et al., ICRA 2018, section IV (Eq. 3: the mean of the soft
    Q-functions, ``w_i = 1 / n``). The result predicts, saves and loads like any SQL model
    (``SQL.load``; its policy is a ``ComposedPolicy``), and can be trained further on an
    environment of the same spaces with ``set_env`` and ``learn``. The constituents are unchanged.

    The other hyperparameters (particles, ``gamma``, ``tau``, ...) and the sampler's
    architecture are those of ``models[0]``.

    :param models: SQL models with the same observation and action spaces, each with its replay
        buffer (after ``learn``, or ``load_replay_buffer``) unless ``observations`` is given.
    :param weights: one non-negative weight per model, not all 0; default ``1 / len(models)`` each.
    :param observations: states to train the sampler on, shape ``[N, *observation_shape]``.
    :param gradient_steps: SVGD steps of the new sampler.
    :param batch_size: states per step; default ``models[0].batch_size``.
    :param learning_rate: Adam learning rate of the sampler; default ``models[0]``'s current one.
    :param ent_coef: the temperature ``alpha`` (reward units); default ``models[0]``'s current one.
    :param seed: seed of the new sampler's initialisation and of the state sampling.
    :param progress_bar: show a tqdm/rich progress bar of the SVGD steps (as SB3's ``learn``).
    :param device: device of the composed model.
    :return: the composed model (``ent_coef`` fixed at the temperature used, no environment).
    :raises ValueError: for no model, models that are not SQL models of one observation and
        action space (or are composed already), a non-``Box`` observation space, bad
        ``weights``, observations of the wrong shape, a model without replay buffer data when
        ``observations`` is None, ``gradient_steps < 1``, or ``batch_size`` below ``len(models)``.
    :raises ImportError: for ``progress_bar=True`` without tqdm and rich.
    """
    constituents, weight_array, observations, batch_size = _checked_inputs(
        models, weights, observations, gradient_steps, batch_size, progress_bar
    )
    first = models[0]
    alpha = first.current_ent_coef() if ent_coef is None else float(ent_coef)
    critic_only = ("n_critics", "share_features_extractor")
    sampler_parameters = {key: value for key, value in constituents[0].items() if key not in critic_only}
    composed = SQL(
        ComposedPolicy,
        env=None,  # type: ignore[arg-type]  # spaces set below, no environment
        learning_rate=first.actor.optimizer.param_groups[0]["lr"] if learning_rate is None else learning_rate,
        buffer_size=first.buffer_size,
        learning_starts=first.learning_starts,
        batch_size=batch_size,
        tau=first.tau,
        gamma=first.gamma,
        ent_coef=alpha,
        target_update_interval=first.target_update_interval,
        value_n_particles=first.value_n_particles,
        value_proposal=first.value_proposal,
        value_proposal_uniform_share=first.value_proposal_uniform_share,
        kernel_n_particles=first.kernel_n_particles,
        kernel_update_ratio=first.kernel_update_ratio,
        particle_space=first.particle_space,
        kernel_bandwidth=first.kernel_bandwidth,
        sampler_kl_coef=first.sampler_kl_coef,
        policy_kwargs=dict(sampler_parameters, constituents=constituents, weights=weight_array.tolist()),
        seed=seed,
        device=device,
        _init_setup_model=False,
    )
    composed.observation_space, composed.action_space, composed.n_envs = first.observation_space, first.action_space, 1
    composed._setup_model()
    composed_critic, composed_target = cast(ComposedCritic, composed.critic), cast(ComposedCritic, composed.critic_target)
    for index, model in enumerate(models):
        composed_critic.critics[index].load_state_dict(model.critic.state_dict())
        composed_target.critics[index].load_state_dict(model.critic_target.state_dict())

    shares = [len(share) for share in np.array_split(np.arange(batch_size), len(models))]
    if observations is not None:
        observation_tensor = th.as_tensor(observations, device=composed.device)
    composed.policy.set_training_mode(True)
    steps = tqdm(range(gradient_steps), desc="compose") if progress_bar else range(gradient_steps)
    for _ in steps:
        if observations is None:
            batch = th.cat(
                [
                    cast(ReplayBuffer, model.replay_buffer)
                    .sample(share, env=model.get_vec_normalize_env())
                    .observations.to(composed.device)
                    for model, share in zip(models, shares, strict=True)
                ]
            )
        else:
            batch = observation_tensor[th.randint(len(observation_tensor), (batch_size,), device=composed.device)]
        actor_loss, _, _ = composed.sampler_loss(batch, alpha)
        composed.actor.optimizer.zero_grad()
        actor_loss.backward()
        composed.actor.optimizer.step()
    composed.policy.set_training_mode(False)
    composed._n_updates = gradient_steps
    return composed

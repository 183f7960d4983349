"""Soft Q-Learning (SQL) for Stable-Baselines3.

Source: T. Haarnoja, H. Tang, P. Abbeel, S. Levine, "Reinforcement Learning with Deep
Energy-Based Policies", ICML 2017 (arXiv:1702.08165), and its reference code
(haarnoja/softqlearning). Equation numbers are the paper's.
"""

import io
import pathlib
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal, TypeVar, cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy, ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.type_aliases import (
    DictReplayBufferSamples,
    GymEnv,
    MaybeCallback,
    PyTorchObs,
    ReplayBufferSamples,
    Schedule,
)
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from sb3_sql.checks import ObservationShapeCheck, check_finite_update, check_model_archive, check_transitions
from sb3_sql.entropy import kozachenko_leonenko_entropy, nearest_neighbour_log_distances, repulsion_neighbour_order
from sb3_sql.kernels import KernelOutput, adaptive_isotropic_gaussian_kernel, bandwidth_scales
from sb3_sql.policies import (
    CnnSoftQPolicy,
    CnnSVGDPolicy,
    DiscreteCritic,
    MlpPolicy,
    MultiInputSoftQPolicy,
    MultiInputSVGDPolicy,
    SamplerNetwork,
    SoftQPolicy,
    SVGDPolicy,
)
from sb3_sql.soft_value import VALUE_PROPOSALS
from sb3_sql.svgd import SATURATION_THRESHOLD, post_tanh_log_correction, squash_log_jacobian, stein_direction

SelfSQL = TypeVar("SelfSQL", bound="SQL")

#: The reference code's settings (haarnoja/softqlearning), where they differ from SQL's defaults:
#: ``SQL("MlpPolicy", env, **REFERENCE_HYPERPARAMETERS)``, including its update (particles in action
#: space with the ``log(1 - a^2 + 1e-6)`` correction). The defaults (SAC's Polyak averaging, learning
#: rate 1e-3 and warm-up of 100 steps; 32 particles, the multiscale kernel and the sampler's noise
#: skip, the sampler's KL term, pre-tanh particles, stochastic actions resampled towards
#: ``exp(Q / alpha)``) were chosen on learning results and on the fidelity benchmark. The preset also
#: takes the reference's initialisation (Glorot-uniform weights, zero biases). One difference
#: remains: the warm-up actions are uniform (SB3), where the reference acts with the untrained
#: sampler from the first step; docs, "Defaults, the paper and the reference code".
REFERENCE_HYPERPARAMETERS: dict[str, Any] = {
    "learning_rate": 3e-4,
    "learning_starts": 1000,
    "tau": 1.0,
    "target_update_interval": 1000,
    "kernel_n_particles": 16,
    "kernel_bandwidth": "reference",
    "sampler_kl_coef": 0.0,
    "particle_space": "post_tanh",
    "policy_kwargs": {"sampler_noise_skip": False, "weight_init": "glorot", "acting_n_candidates": 0},
}

#: What ``SQL`` gives the ``SVGDPolicy`` of a model it creates, where the policy's own defaults keep
#: the earlier behaviour for models saved before (a loaded model keeps its saved settings): the
#: sampler's noise skip and stochastic actions resampled among 64 candidates (docs, "Acting").
NEW_MODEL_POLICY_KWARGS: dict[str, Any] = {"sampler_noise_skip": True, "acting_n_candidates": 64}

ParticleSpace = Literal["pre_tanh", "post_tanh"]
PARTICLE_SPACES = ("pre_tanh", "post_tanh")
ValueProposal = Literal["uniform", "sampler"]
CriticLoss = Literal["mse", "huber"]
CRITIC_LOSSES = ("mse", "huber")
# target_entropy="auto" for discrete actions: this share of the uniform policy's entropy log(A).
AUTO_TARGET_ENTROPY_SCALE = 0.5
# The most elements a particle tensor of one gradient step may hold (8 GiB in float32): more fails
# to allocate, or overflows 32-bit indexing in some CUDA kernels.
MAX_PARTICLE_TENSOR_ELEMENTS = 2**31


class SQL(OffPolicyAlgorithm):
    """
    Soft Q-Learning (SQL), for bounded continuous and for discrete actions.

    The soft Q-function defines the energy-based policy ``pi(a|s) ~ exp(Q(s, a) / alpha)``.
    For continuous actions a sampling network ``a = tanh(f(s, xi))``, ``xi ~ N(0, I)``, is trained
    by amortized Stein variational gradient descent to draw from it, and the soft value of the next
    state is estimated by importance sampling with a uniform proposal (or, with
    ``value_proposal="sampler"``, a proposal fitted to the sampler). For discrete actions the
    policy is ``softmax(Q(s, .) / alpha)`` and the soft value ``alpha * logsumexp(Q / alpha)`` is
    exact: no sampler.
    Paper: https://arxiv.org/abs/1702.08165

    :param policy: the policy model to use: ``"MlpPolicy"``, ``"CnnPolicy"`` or
        ``"MultiInputPolicy"`` (resolved by the action space to an ``SVGDPolicy`` or a
        ``SoftQPolicy``), or a policy class that fits the action space.
    :param env: the environment to learn from (if registered in Gymnasium, can be a str).
        Its action space must be a ``gymnasium.spaces.Box`` with finite bounds or a
        ``gymnasium.spaces.Discrete`` (starting at 0).
    :param learning_rate: Adam learning rate of the soft Q-function, of the sampler and of the
        temperature (default 1e-3; reference 3e-4); it can be a function of the current progress
        remaining (from 1 to 0).
    :param buffer_size: size of the replay buffer.
    :param learning_starts: how many steps to collect (with uniformly random actions, as in SB3)
        before learning starts (default 100 as in SAC; reference 1000).
    :param batch_size: minibatch size for each gradient update (reference 128).
    :param tau: the target update coefficient: the default ``0.005`` with
        ``target_update_interval=1`` is Polyak averaging as in SAC; ``tau=1.0`` with
        ``target_update_interval=1000`` is the reference code's hard copy; 0 freezes the target
        network. ``tau < 1`` with ``target_update_interval > 1`` warns (an average taken rarely
        is rarely what a SAC user means).
    :param gamma: the discount factor.
    :param train_freq: update the model every ``train_freq`` steps, or ``(n, "step")`` /
        ``(n, "episode")``.
    :param gradient_steps: gradient steps after each rollout; ``-1`` means as many as
        environment steps were collected.
    :param action_noise: optional extra action noise for continuous actions (None by default; the
        sampler explores). Discrete actions explore through the Boltzmann policy.
    :param replay_buffer_class: replay buffer class to use (for instance ``HerReplayBuffer``).
    :param replay_buffer_kwargs: keyword arguments for the replay buffer.
    :param optimize_memory_usage: enable the memory efficient variant of the replay buffer.
    :param n_steps: n-step returns (SB3's ``NStepReplayBuffer``) when larger than 1. The soft
        target then adds the raw rewards of the intermediate steps without their entropy bonus
        (the buffer keeps no intermediate states to evaluate it at): a deviation from the soft
        Bellman equation, small when ``ent_coef`` is small against the rewards.
    :param ent_coef: the temperature ``alpha`` (a positive float) of the maximum-entropy
        objective, in reward units. The reference code keeps ``alpha = 1`` and multiplies
        rewards by ``reward_scale``: that is ``ent_coef = 1 / reward_scale`` (Q measured in
        reward units here, in scaled units there). ``"auto"`` (or ``"auto_<init>"``, e.g.
        ``"auto_0.1"``; initial value 1.0 otherwise) learns it as SAC does, towards
        ``target_entropy``: with the exact entropy of the Boltzmann policy for discrete actions, and
        with a nearest-neighbour estimate from the sampler's ``K`` particles per state for continuous
        actions (``sb3_sql.entropy.kozachenko_leonenko_entropy``, logged as ``train/entropy`` for
        any temperature); the learnt value is ``log_ent_coef``, as in SAC (the policy's). It can also be a
        schedule, a function of the progress remaining (from 1 to 0) like ``learning_rate``, e.g.
        the log-linear annealing of
        fine-tuning, ``sb3_sql.LogLinearSchedule``; the current value is logged as ``train/ent_coef``.
    :param target_entropy: the entropy (nats) that ``ent_coef="auto"`` aims at; ``"auto"`` means
        ``0.5 * log(A)`` for ``A`` discrete actions (half the uniform policy's entropy) and SAC's
        ``-dim(A)`` for continuous actions (entropy of the actions scaled to ``[-1, 1]^D``). Measured:
        as good as the tuned temperature on Pendulum-v1, but far too low for MultiGoal-v0, where it
        sends every seed to a single goal (docs, "Benchmarks"); give a target per task.
    :param target_update_interval: update the target network every ``target_update_interval``
        gradient steps (counted over the whole training; default 1 as in SAC, reference 1000).
    :param value_n_particles: ``M``, actions drawn per gradient step to estimate the soft value of
        the next state (Eq. 10; reference 16).
    :param value_proposal: the density the ``M`` actions are drawn from (continuous actions; unused
        for discrete ones, whose soft value is exact): ``"uniform"`` (default, the paper's Eq. 10:
        one set of ``M`` uniform actions on ``[-1, 1]^D`` for the minibatch) or ``"sampler"``, a
        defensive mixture per next state (Hesterberg, Technometrics 1995): a share
        ``value_proposal_uniform_share`` of the ``M`` actions uniform, the others drawn from a
        Gaussian fitted to 32 pre-tanh particles of the sampler at that state and squashed by tanh,
        all weighted by the mixture's exact density (the balance heuristic, Veach & Guibas, 1995).
        Uniform draws rarely land where ``exp(Q / alpha)`` holds its mass when ``D`` is large: on
        Humanoid-v5 (``D = 17``) the uniform ``M = 16`` estimate was 346 nats (RMSE) off a
        large-``M`` reference, the mixture 18.5 (docs, "Benchmarks"). It costs one sampler pass of
        32 particles per next state. ``SVGDPolicy.soft_value`` computes both.
    :param value_proposal_uniform_share: the uniform share of ``value_proposal="sampler"``'s draws,
        in ``(0, 1]`` (default 0.25: 4 of 16); ``round(share * M)`` of them, at least one, are
        uniform. It bounds every importance weight by ``2^D / share`` times ``exp(Q / alpha)``. With
        1.0 every draw is uniform and the estimate is the ``"uniform"`` one. Unused with
        ``"uniform"``.
    :param kernel_n_particles: ``K``, sampler particles per state for the Stein direction
        (Eq. 13; default 32, chosen on the fidelity benchmark; reference 16; at least 3).
    :param kernel_update_ratio: share of the ``K`` particles that are updated; the others are
        fixed and carry the kernel (reference 0.5).
    :param kernel_bandwidth: the bandwidth rule of the SVGD kernel (Eq. 13), relative to the
        reference code's median heuristic ``h = median(||x_j - y_i||^2) / log(Kx)``:
        ``"multiscale"`` (default: the mean of two RBF kernels of bandwidths ``h`` and ``h / 10``,
        chosen on the fidelity benchmark), ``"reference"`` (``h`` alone, the reference code),
        ``"paper"`` (the paper's ``median / (2 log(K + 1))``), or positive scales of ``h``, e.g.
        ``(1.0, 0.1)``; see ``sb3_sql.kernels.bandwidth_scales``.
    :param sampler_kl_coef: weight ``w`` of an extra term of the sampler's update (default 0.01; 0:
        the paper's amortized SVGD alone). With ``w > 0`` each updated particle also moves by ``w``
        times the gradient of ``-KL(q || p)``: its own score ``grad log p`` plus the gradient of the
        Kozachenko-Leonenko entropy of the particles (``D`` times the repulsion from the nearest
        neighbour, the second nearest in one dimension:
        ``sb3_sql.entropy.repulsion_neighbour_order`` and ``nearest_neighbour_log_distances``). The
        Stein direction (Eq. 13) moves a particle by the kernel-weighted scores of the *fixed*
        particles, so particles left between modes feel almost no pull once the fixed ones sit in
        the modes; this term pulls them in. Not in the paper. Chosen on the fidelity benchmark
        (docs, "Benchmarks"): with 0.01 four sharp modes come out at TV 0.087 instead of 0.121, the
        four-mode bandit after full RL at 0.068 instead of 0.097 and 0.191 (two seeds), and two
        unequal 1-D modes at 0.047 (0.044 without); MultiGoal-v0 reaches all four goals on 5 of 5
        seeds (4 of 5 without). HalfCheetah-v5 over 5 seeds: the same deterministic return, a lower
        stochastic one within the seeds' noise. Larger weights fill sharper modes but move mass
        between modes less well; in six dimensions the sampler comes out too narrow (nearest
        neighbours are few and far). It costs one larger critic pass (all ``K`` particles instead of
        the fixed ones) per step, 1.2 to 1.5 times the gradient step without it.
    :param particle_space: where the SVGD particles live: ``"pre_tanh"`` (default, exact: the
        squashed samples follow ``exp(Q / alpha)``) or ``"post_tanh"`` (the reference code's
        action-space particles, biased towards the centre of the box).
    :param soft_double_q: discrete actions with ``n_critics=2`` only: the soft value of the next
        state is the soft double-Q estimate (the first target critic's Boltzmann policy, evaluated
        by the second) instead of the exact soft value of the minimum of the two.
    :param critic_loss: the soft Q-function's regression loss on the soft Bellman residual:
        ``"mse"`` (default, the paper's Eq. 11: half the squared residual) or ``"huber"`` (SB3 DQN's
        smooth L1 loss: the same below a residual of 1, linear above it, so rare large rewards move
        the critic less).
    :param max_grad_norm: clip the gradient norm of the soft Q-function and of the sampler to this
        value before each step, as SB3's DQN does (default ``None``: no clipping, as in the paper and SAC).
    :param use_sde: accepted for SAC's signature; ``True`` is refused (SQL's policy is not a Gaussian,
        so it has no generalized State-Dependent Exploration).
    :param sde_sample_freq: accepted for SAC's signature; unused (no gSDE).
    :param use_sde_at_warmup: accepted for SAC's signature; unused (no gSDE).
    :param stats_window_size: window size for the rollout logging.
    :param tensorboard_log: the log location for tensorboard (if None, no logging).
    :param policy_kwargs: additional arguments for the policy (``net_arch``, ``n_critics``, ...;
        ``sampler_noise_skip``, on by default for new models, and ``acting_n_candidates``, 64 for new
        models, are the sampler's and unused for discrete actions).
    :param verbose: 0 no output, 1 info, 2 debug.
    :param seed: seed for the pseudo random generators.
    :param device: device (cpu, cuda, ...) on which the code should be run.
    :param _init_setup_model: whether or not to build the network at the creation of the instance.
    :raises ValueError: for an action space other than a bounded ``Box`` or a ``Discrete``, a
        policy class for the other kind of action space, an ``ent_coef`` that is not a positive finite
        float, ``"auto"``, ``"auto_<init>"`` or a schedule positive at progress 1 and 0 (also on
        assignment; a schedule's value is checked again at each use), a ``target_entropy`` other than
        ``"auto"`` or a finite number, non-integer ``buffer_size``, ``batch_size``, ``n_steps``,
        ``gradient_steps`` or particle counts, particle counts whose tensors would exceed
        ``MAX_PARTICLE_TENSOR_ELEMENTS``, ``use_sde=True``,
        ``action_noise`` or ``soft_double_q`` where they do not apply, ``value_n_particles < 1``, an
        unknown ``value_proposal``, a ``value_proposal_uniform_share`` outside ``(0, 1]``,
        ``kernel_n_particles < 3``, a ``kernel_update_ratio`` that leaves fewer than 2 fixed or no
        updated particle, an unknown ``kernel_bandwidth``, ``particle_space`` or ``critic_loss``, a
        negative or non-finite ``sampler_kl_coef``, or a ``max_grad_norm`` that is not positive.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnSVGDPolicy,
        "MultiInputPolicy": MultiInputSVGDPolicy,
    }
    # The same names for discrete action spaces, resolved in __init__.
    discrete_policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": SoftQPolicy,
        "CnnPolicy": CnnSoftQPolicy,
        "MultiInputPolicy": MultiInputSoftQPolicy,
    }
    policy: SVGDPolicy | SoftQPolicy
    actor: SamplerNetwork
    critic: ContinuousCritic | DiscreteCritic
    critic_target: ContinuousCritic | DiscreteCritic

    def __init__(
        self,
        policy: str | type[SVGDPolicy] | type[SoftQPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 128,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        ent_coef: float | str | Schedule = 0.1,
        target_entropy: float | str = "auto",
        target_update_interval: int = 1,
        value_n_particles: int = 16,
        value_proposal: ValueProposal = "uniform",
        value_proposal_uniform_share: float = 0.25,
        kernel_n_particles: int = 32,
        kernel_update_ratio: float = 0.5,
        particle_space: ParticleSpace = "pre_tanh",
        kernel_bandwidth: str | float | tuple[float, ...] = "multiscale",
        sampler_kl_coef: float = 0.01,
        soft_double_q: bool = False,
        critic_loss: CriticLoss = "mse",
        max_grad_norm: float | None = None,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        if use_sde:
            raise ValueError(
                "use_sde=True: SQL has no gSDE. gSDE makes the noise of a Gaussian policy depend on the state, and "
                "SQL's policy is not a Gaussian: its sampler draws from exp(Q / ent_coef) and already explores in every "
                "promising direction. For more exploration raise ent_coef, or add action_noise (e.g. "
                "stable_baselines3.common.noise.OrnsteinUhlenbeckActionNoise for temporally correlated noise)."
            )
        env = maybe_make_env(env, verbose)
        if env is not None:
            self._check_action_space(env.action_space)
            if isinstance(policy, str) and isinstance(env.action_space, spaces.Discrete):
                policy = self.discrete_policy_aliases.get(policy, policy)  # type: ignore[assignment]  # unknown names: SB3's error
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            # Checked above, with a ValueError that says what is supported.
            supported_action_spaces=None,
            support_multi_env=True,
            sde_support=False,
            sde_sample_freq=sde_sample_freq,
            use_sde_at_warmup=use_sde_at_warmup,
        )
        if (
            isinstance(getattr(self, "action_space", None), spaces.Box)
            and isinstance(self.policy_class, type)
            and issubclass(self.policy_class, SVGDPolicy)
        ):
            # New models get the sampler with the noise skip and act by resampling (a loaded model keeps
            # the settings it was saved with).
            self.policy_kwargs = {**NEW_MODEL_POLICY_KWARGS, **self.policy_kwargs}
        elif isinstance(getattr(self, "action_space", None), spaces.Discrete):
            # No sampler, hence neither option: as for the kernel settings, the sampler's options are unused,
            # so that REFERENCE_HYPERPARAMETERS apply to both action kinds.
            self.policy_kwargs = {
                key: value for key, value in self.policy_kwargs.items() if key not in NEW_MODEL_POLICY_KWARGS
            }
        self.ent_coef = ent_coef
        self.target_entropy = target_entropy
        self.ent_coef_optimizer: th.optim.Adam | None = None
        self.target_update_interval = target_update_interval
        if tau < 1.0 and target_update_interval > 1:
            warnings.warn(
                f"tau={tau} with target_update_interval={target_update_interval}: the target network moves {tau} of "
                f"the way to the critic once every {target_update_interval} gradient steps, much slower than SAC's "
                f"Polyak averaging. For SAC's behaviour pass target_update_interval=1 as well; for the reference "
                f"code's hard copy, tau=1.0.",
                UserWarning,
                stacklevel=2,
            )
        self.value_n_particles = value_n_particles
        self.value_proposal = value_proposal
        self.value_proposal_uniform_share = value_proposal_uniform_share
        self.kernel_n_particles = kernel_n_particles
        self.kernel_update_ratio = kernel_update_ratio
        self.particle_space = particle_space
        self.kernel_bandwidth = kernel_bandwidth
        self.sampler_kl_coef = sampler_kl_coef
        self.soft_double_q = soft_double_q
        self.critic_loss = critic_loss
        self.max_grad_norm = max_grad_norm

        if _init_setup_model:
            self._setup_model()

    @staticmethod
    def _check_action_space(space: spaces.Space) -> None:
        """Refuse action spaces other than a ``Box`` with finite bounds or a ``Discrete`` starting at 0 (ValueError)."""
        if isinstance(space, spaces.Discrete):
            if space.start != 0:
                raise ValueError(
                    f"SQL needs a Discrete action space that starts at 0, got {space}: "
                    "shift the actions with a gymnasium.ActionWrapper."
                )
            return
        if not isinstance(space, spaces.Box):
            raise ValueError(
                f"SQL does not support the action space {space}: supported are a gymnasium.spaces.Box "
                "with finite bounds (continuous actions) and a gymnasium.spaces.Discrete (discrete actions)."
            )
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ValueError(
                f"SQL needs a bounded action space, got {space} with infinite bounds: the sampler "
                "squashes actions into [low, high]; give the Box finite low and high."
            )
        if np.any(space.low >= space.high):
            raise ValueError(
                f"SQL needs low < high in every dimension of the action space, got {space} with "
                f"low={space.low}, high={space.high}: fix the bounds (actions are rescaled by high - low)."
            )

    @property
    def ent_coef(self) -> float | str | Schedule:
        """The temperature setting: a positive float, ``"auto"`` / ``"auto_<init>"``, or a schedule.

        Assigning it (``model.ent_coef = 0.05``) takes effect at the next ``train()`` or ``predict()``
        call (``_sync_policy_temperature``).

        :raises ValueError: on assignment of anything else (``None``, a value that is not positive and
            finite, a schedule not positive at progress 1 and 0, an unknown string).
        """
        # Kept in the instance dict under its own name, as SB3's save() and load() expect.
        return self.__dict__["ent_coef"]

    @ent_coef.setter
    def ent_coef(self, value: float | str | Schedule) -> None:
        self._check_ent_coef(value)
        self.__dict__["ent_coef"] = value

    @staticmethod
    def _check_ent_coef(value: Any) -> None:
        """Refuse a temperature setting SQL cannot use (ValueError naming ``ent_coef`` and the fix)."""
        if isinstance(value, str):
            name, _, init = value.partition("_")
            try:
                init_value = float(init) if init else 1.0
            except ValueError:
                init_value = float("nan")
            if name != "auto" or not (np.isfinite(init_value) and init_value > 0):
                raise ValueError(
                    f"ent_coef must be a positive float, 'auto' or 'auto_<init>' with a positive initial value "
                    f"(e.g. 'auto_0.1'), got {value!r}"
                )
        elif callable(value):
            for progress_remaining in (1.0, 0.0):
                source = f"the ent_coef schedule at progress_remaining={progress_remaining}"
                SQL._check_temperature_value(value(progress_remaining), source)
        elif not _is_real(value):
            raise ValueError(
                f"ent_coef (the temperature alpha) must be a positive finite float, 'auto', 'auto_<init>' or a "
                f"schedule, got {value!r} of type {type(value).__name__}: pass e.g. ent_coef=0.1."
            )
        else:
            SQL._check_temperature_value(value, "ent_coef")

    @staticmethod
    def _check_temperature_value(value: Any, source: str) -> float:
        """``value`` as a float if it is a positive finite temperature, else a ValueError naming ``source``."""
        if not (_is_real(value) and np.isfinite(value) and value > 0):
            raise ValueError(
                f"{source} gives the temperature {value!r}: ent_coef (the temperature alpha) must be a positive "
                "finite float, in reward units (e.g. 0.1 for rewards of order 1). Set a positive value "
                "(model.ent_coef = 0.1) or a schedule that stays positive."
            )
        return float(value)

    @property
    def _svgd_policy(self) -> SVGDPolicy:
        assert isinstance(self.policy, SVGDPolicy), "continuous actions only"
        return self.policy

    @property
    def _continuous_critic(self) -> ContinuousCritic:
        return cast(ContinuousCritic, self.critic)

    @property
    def discrete_actions(self) -> bool:
        """Whether the action space is ``Discrete`` (soft Q-learning proper, no sampler)."""
        return isinstance(self.action_space, spaces.Discrete)

    def _check_arguments(self) -> None:
        """Refuse hyperparameters SQL cannot learn with (ValueError), before any network or buffer is built."""
        self._check_action_space(self.action_space)
        expected_policy = SoftQPolicy if self.discrete_actions else SVGDPolicy
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, expected_policy)):
            raise ValueError(
                f"The policy {self.policy_class} does not fit the action space {self.action_space}: SQL needs a "
                f"subclass of {expected_policy.__name__} there, or a name ('MlpPolicy', 'CnnPolicy', 'MultiInputPolicy'). "
                "If you are loading a file, it was saved by another algorithm: load it with that algorithm's class "
                "(e.g. SAC.load)."
            )
        # 0 is allowed: it freezes the networks (rl_zoo3's enjoy loads models with learning_rate=0).
        learning_rate = self.learning_rate
        if not (callable(learning_rate) or (_is_real(learning_rate) and np.isfinite(learning_rate) and learning_rate >= 0)):
            raise ValueError(
                f"learning_rate must be a non-negative finite float or a schedule, got {self.learning_rate!r}: "
                "pass e.g. learning_rate=1e-3"
            )
        # Counts SB3's buffers use as array sizes must be integers (a float fails there, for SAC too).
        for name, minimum in (("buffer_size", 1), ("batch_size", 1), ("n_steps", 1)):
            value = getattr(self, name)
            if not (_is_count(value) and value >= minimum):
                raise ValueError(f"{name} must be at least {minimum}, got {value!r}: pass an integer (int)")
        # A batch larger than the buffer is allowed: SB3's buffers sample with replacement (as for SAC).
        if not (_is_real(self.learning_starts) and self.learning_starts >= 0):
            raise ValueError(f"learning_starts must be a number of steps >= 0, got {self.learning_starts!r}")
        # -1 (any negative count, in SB3) means as many gradient steps as environment steps were collected.
        if not _is_count(self.gradient_steps):
            raise ValueError(
                f"gradient_steps must be an integer (-1: as many as env steps collected), got {self.gradient_steps!r}"
            )
        if not (_is_real(self.gamma) and 0.0 <= self.gamma <= 1.0):
            raise ValueError(f"gamma (the discount factor) must be in [0, 1], got {self.gamma!r}")
        # 0 is allowed, as in SAC: the target network then stays at its initial weights.
        if not (_is_real(self.tau) and 0.0 <= self.tau <= 1.0):
            raise ValueError(f"tau must be in [0, 1] (1.0 is a hard target copy), got {self.tau!r}")
        self._check_temperature_arguments()
        self._check_sampler_arguments()
        if self.critic_loss not in CRITIC_LOSSES:
            raise ValueError(f"critic_loss must be one of {CRITIC_LOSSES}, got {self.critic_loss!r}")
        if self.max_grad_norm is not None and not (np.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise ValueError(
                f"max_grad_norm must be a positive float (DQN uses 10) or None for no clipping, got {self.max_grad_norm}"
            )
        if not (_is_real(self.target_update_interval) and self.target_update_interval >= 1):
            raise ValueError(f"target_update_interval must be at least 1 gradient step, got {self.target_update_interval!r}")

    def _check_temperature_arguments(self) -> None:
        """Refuse a temperature or a target entropy SQL cannot use (ValueError)."""
        self._check_ent_coef(self.ent_coef)
        if isinstance(self.target_entropy, str) and self.target_entropy == "auto":
            return
        try:
            target_entropy = float(self.target_entropy)
        except (TypeError, ValueError):
            target_entropy = float("nan")
        if not np.isfinite(target_entropy):
            raise ValueError(
                f"target_entropy must be 'auto' or a finite float (nats; SAC's -dim(A) for continuous actions), "
                f"got {self.target_entropy!r}"
            )

    def _check_sampler_arguments(self) -> None:
        """Refuse exploration, particle and kernel settings SQL cannot use (ValueError)."""
        if self.discrete_actions and self.action_noise is not None:
            raise ValueError(
                "action_noise applies to continuous actions only: discrete actions explore through the "
                "Boltzmann policy softmax(Q / ent_coef); raise ent_coef for more exploration."
            )
        n_critics = self.policy_kwargs.get("n_critics", 1)
        if self.soft_double_q and not (self.discrete_actions and n_critics == 2):
            raise ValueError(
                f"soft_double_q needs discrete actions and policy_kwargs n_critics=2, got {self.action_space} "
                f"and n_critics={n_critics}."
            )
        self._check_particle_count("value_n_particles", "M", 1)
        if self.value_proposal not in VALUE_PROPOSALS:
            raise ValueError(f"value_proposal must be one of {VALUE_PROPOSALS}, got {self.value_proposal!r}")
        if not (_is_real(self.value_proposal_uniform_share) and 0.0 < self.value_proposal_uniform_share <= 1.0):
            raise ValueError(
                "value_proposal_uniform_share (the uniform share of value_proposal='sampler') must be in (0, 1], "
                f"got {self.value_proposal_uniform_share}"
            )
        # At least 3: two fixed particles for the kernel's bandwidth and one updated particle.
        self._check_particle_count("kernel_n_particles", "K", 3)
        if not (_is_real(self.kernel_update_ratio) and np.isfinite(self.kernel_update_ratio)):
            raise ValueError(f"kernel_update_ratio must be a float in (0, 1), got {self.kernel_update_ratio}")
        n_updated = int(self.kernel_n_particles * self.kernel_update_ratio)
        if not (n_updated >= 1 and self.kernel_n_particles - n_updated >= 2):
            raise ValueError(
                f"kernel_update_ratio={self.kernel_update_ratio} with kernel_n_particles={self.kernel_n_particles} "
                f"leaves {n_updated} updated and {self.kernel_n_particles - n_updated} fixed particles; "
                "at least 1 updated and 2 fixed are needed (the kernel's bandwidth divides by log of the "
                "fixed count; the reference uses 0.5)."
            )
        bandwidth_scales(self.kernel_bandwidth, self.kernel_n_particles - n_updated, self.kernel_n_particles)
        if self.particle_space not in PARTICLE_SPACES:
            raise ValueError(f"particle_space must be one of {PARTICLE_SPACES}, got {self.particle_space!r}")
        if not (_is_real(self.sampler_kl_coef) and np.isfinite(self.sampler_kl_coef) and self.sampler_kl_coef >= 0):
            raise ValueError(
                f"sampler_kl_coef must be a finite float >= 0 (0: the paper's sampler), got {self.sampler_kl_coef}"
            )

    def _check_particle_count(self, name: str, symbol: str, minimum: int) -> None:
        """Refuse a particle count that is not an integer ``>= minimum`` or whose tensors cannot be allocated (ValueError).

        The largest tensor of a gradient step grows as ``batch_size * count**2`` for the kernel's
        ``K`` (the kernel matrix ``[batch, K_fixed, K_updated]``) and ``batch_size * count`` for the
        soft value's ``M``; it must hold at most ``MAX_PARTICLE_TENSOR_ELEMENTS`` elements.
        """
        count = getattr(self, name)
        if not (_is_count(count) and count >= minimum):
            raise ValueError(f"{name} ({symbol}) must be an integer of at least {minimum}, got {count!r}: pass e.g. {name}=16")
        elements = self.batch_size * (count * count // 4 if symbol == "K" else count)
        if elements > MAX_PARTICLE_TENSOR_ELEMENTS:
            raise ValueError(
                f"{name}={count} with batch_size={self.batch_size}: a gradient step would need a tensor of about "
                f"{elements:.3g} elements, more than {MAX_PARTICLE_TENSOR_ELEMENTS:.3g} (8 GiB in float32). "
                "Use fewer particles (the reference uses 16) or a smaller batch_size."
            )

    def _initial_ent_coef(self) -> float:
        """The temperature to start from: ``ent_coef`` itself, or ``<init>`` of ``"auto_<init>"`` (1.0 for ``"auto"``)."""
        if callable(self.ent_coef):
            return float(self.ent_coef(1.0))
        if not isinstance(self.ent_coef, str):
            return float(self.ent_coef)
        _, _, init = self.ent_coef.partition("_")
        return float(init) if init else 1.0

    def _setup_model(self) -> None:
        self._check_arguments()
        super()._setup_model()
        self._create_aliases()
        self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])
        self._setup_temperature()

    def _setup_temperature(self) -> None:
        """The temperature's home, the policy's ``log_ent_coef``, set to its initial value, and the target entropy.

        Both policies hold the temperature as ``log_ent_coef`` (``sb3_sql.policies.TemperatureMixin``).
        With ``ent_coef="auto"`` it is learnt as in SAC: ``self.log_ent_coef`` is that same tensor and
        ``self.ent_coef_optimizer`` steps it; with a fixed or scheduled ``ent_coef``,
        ``self.log_ent_coef`` is ``None`` (as in SAC) and ``ent_coef`` is written into the policy
        before each ``train()`` and ``predict()`` call (``_sync_policy_temperature``).
        """
        if self.target_entropy == "auto":
            if isinstance(self.action_space, spaces.Discrete):
                self.target_entropy = AUTO_TARGET_ENTROPY_SCALE * float(np.log(self.action_space.n))
            else:
                self.target_entropy = -float(get_action_dim(self.action_space))  # SAC's -dim(A)
        else:
            self.target_entropy = float(self.target_entropy)
        self.policy.set_ent_coef(self._initial_ent_coef())
        self.log_ent_coef: th.Tensor | None = None
        if isinstance(self.ent_coef, str):
            self.log_ent_coef = self.policy.log_ent_coef.requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))

    def _create_aliases(self) -> None:
        if isinstance(self.policy, SVGDPolicy):
            self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    def train(self, gradient_steps: int, batch_size: int = 128) -> None:
        """Run ``gradient_steps`` SQL updates on minibatches of ``batch_size`` transitions.

        Each step, in the paper's order, for both action kinds (what differs is the policy's:
        ``SVGDPolicy`` or ``SoftQPolicy``):

        1. the soft value of the next states, ``policy.soft_value``: importance sampled for
           continuous actions (Eq. 10), exact for discrete ones (Eq. 5);
        2. the soft Bellman target (Eq. 7, 11) and the critic step on its residual (Eq. 11);
        3. the policy step (``_policy_step``): the sampler step along the Stein direction for
           continuous actions (Eq. 13-14); none for discrete actions, whose policy is the critic's
           Boltzmann distribution (Eq. 6); either way the policy's entropy at the minibatch states;
        4. the temperature step, when ``ent_coef="auto"`` (``_temperature_step``);
        5. the target update, every ``target_update_interval`` steps.

        The temperature of each step is ``policy.temperature_for_update(current_ent_coef())`` for a fixed
        or scheduled ``ent_coef`` (the policy's ``log_ent_coef``, written before the first step by
        ``_sync_policy_temperature``; for continuous actions the exact float it holds to float32
        precision), and the learnt ``exp(log_ent_coef)`` itself, a tensor, with ``ent_coef="auto"``.

        The step reads nothing back from the device but the finiteness of each update before its
        optimizer step (``check_finite_update``); a learnt temperature is read and checked once per
        call, before the first step (``current_ent_coef``), and the logged statistics (``train/*``,
        means over the call's gradient steps) are read once per call. With a fixed or scheduled temperature the
        sampler's entropy is only logged: it is estimated from the last gradient step's particles
        when the log is written (``dump_logs``), not at every step.
        """
        self.policy.set_training_mode(True)
        optimizers = self.policy.network_optimizers()
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        self._sync_policy_temperature()
        # Checked once per call: within it, a learnt temperature only moves by checked optimizer steps.
        checked_alpha = self.current_ent_coef()
        fixed_alpha = None if self.log_ent_coef is not None else self.policy.temperature_for_update(checked_alpha)

        stats: dict[str, list[th.Tensor]] = {}
        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            # A learnt temperature changes every step and is used as the tensor it is.
            alpha = self.log_ent_coef.detach().exp() if self.log_ent_coef is not None else fixed_alpha
            assert alpha is not None

            target_q_values, next_soft_value = self.soft_q_target(replay_data, alpha)
            current_q_values, state_q_values = self.policy.critic_q_values(
                self.critic,  # type: ignore[arg-type]  # the policy's own critic
                replay_data.observations,
                replay_data.actions,
            )
            critic_loss = self._critic_loss(current_q_values, target_q_values)
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            check_finite_update("critic", critic_loss, self.critic.parameters(), alpha, replay_data)
            self._clip_grad_norm(self.critic.parameters())
            self.critic.optimizer.step()

            with_entropy = self.ent_coef_optimizer is not None
            entropy, policy_stats = self._policy_step(replay_data, alpha, state_q_values, with_entropy)
            step_stats = {
                "critic_loss": critic_loss.detach(),
                "q_value": current_q_values[0].detach().mean(),
                "soft_value": next_soft_value.mean(),
                **policy_stats,
            }
            if entropy is not None:
                step_stats["entropy"] = entropy
            if self.ent_coef_optimizer is not None:
                assert entropy is not None
                step_stats["ent_coef"] = th.as_tensor(alpha).reshape(())
                step_stats["ent_coef_loss"] = self._temperature_step(entropy, alpha, replay_data)

            # Target update: Polyak averaging every step by default, a hard copy with tau=1.
            if (self._n_updates + gradient_step + 1) % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

            for key, value in step_stats.items():
                stats.setdefault(key, []).append(value)

        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if fixed_alpha is not None:
            self.logger.record("train/ent_coef", self.current_ent_coef())
        if stats:
            means = th.stack([th.stack(values).mean() for values in stats.values()]).tolist()  # the call's one read
            for key, mean in zip(stats, means, strict=True):
                self.logger.record(f"train/{key}", mean)

    def soft_q_target(
        self, replay_data: ReplayBufferSamples | DictReplayBufferSamples, alpha: float | th.Tensor
    ) -> tuple[th.Tensor, th.Tensor]:
        """The soft Bellman target of the soft Q-function (Eq. 7 and 11), without gradient.

        ``y = r + (1 - done) * discount * V(s')``, where ``discount`` is ``gamma`` or, with ``n_steps > 1``,
        the buffer's ``gamma^k`` for each transition, and ``V(s')`` is the policy's soft value of the
        next states from the target critic (``policy.soft_value``): for continuous actions importance
        sampled from ``M = value_n_particles`` actions (Eq. 10), by default uniform on ``[-1, 1]^D``,
        one set drawn for the whole minibatch::

            V(s') = alpha * [ logsumexp_j(Q_target(s', a_j) / alpha) - log M + D * log 2 ]

        or, with ``value_proposal="sampler"``, drawn per state from a defensive mixture of density ``q``,
        ``alpha * [ logsumexp_j(Q_target(s', a_j) / alpha - log q(a_j)) - log M ]``;
        and for discrete actions exact, ``alpha * logsumexp_a(Q_target(s', a) / alpha)`` (Eq. 5), or the
        soft double-Q estimate with ``soft_double_q``. Twin critics give their minimum.

        :param replay_data: a minibatch of ``batch`` transitions.
        :param alpha: the temperature (reward units): a float, or a tensor of shape ``[1]``.
        :return: the targets ``y`` and the soft values ``V(s')``, each ``[batch, 1]``.
        """
        discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
        next_soft_value = self.policy.soft_value(
            self.critic_target,  # type: ignore[arg-type]  # the policy's own target critic
            replay_data.next_observations,
            alpha,
            n_particles=self.value_n_particles,
            soft_double_q=self.soft_double_q,
            proposal=self.value_proposal,
            uniform_share=self.value_proposal_uniform_share,
        )
        with th.no_grad():
            # `dones` is true termination only (SB3 keeps time-limit truncations non-terminal).
            target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_soft_value
        return target_q_values, next_soft_value

    def _policy_step(
        self,
        replay_data: ReplayBufferSamples | DictReplayBufferSamples,
        alpha: float | th.Tensor,
        state_q_values: th.Tensor | None,
        with_entropy: bool = True,
    ) -> tuple[th.Tensor | None, dict[str, th.Tensor]]:
        """The policy's part of a gradient step, after the critic step, and the policy's entropy.

        With a sampler (``SVGDPolicy``, continuous actions): one sampler step along the Stein
        direction (``sampler_loss``, Eq. 13-14), and the Kozachenko-Leonenko estimate of the entropy
        from its ``K`` particles per state (``sb3_sql.entropy``, actions scaled to ``[-1, 1]^D``).
        Without (``SoftQPolicy``, discrete actions) the policy is the Boltzmann distribution of the
        critic (Eq. 6): nothing to step, and its entropy is exact, at the Q-values of the critic step.

        :param replay_data: the minibatch of the step (``batch`` states).
        :param alpha: the temperature of the step (reward units): a float, or a tensor of shape ``[1]``.
        :param state_q_values: ``min_i Q_i(s, .)``, ``[batch, A]``, from ``policy.critic_q_values``
            (None for a sampler).
        :param with_entropy: estimate the sampler's entropy; else None is returned in its place and the
            particles are kept for ``dump_logs`` (the exact entropy of discrete actions is always returned).
        :return: the mean entropy over the states (nats, a scalar without gradient), or None, and the
            step's statistics of the sampler (``actor_loss``, ``kernel_bandwidth``, ``saturated_fraction``;
            none without a sampler), scalar tensors keyed by logger name without ``train/``.
        """
        if isinstance(self.policy, SoftQPolicy):
            assert state_q_values is not None
            return self.policy.boltzmann_entropy(state_q_values, alpha).mean(), {}

        actor_loss, kernel, pre_tanh = self.sampler_loss(replay_data.observations, alpha)
        self.actor.optimizer.zero_grad()
        actor_loss.backward()
        check_finite_update("sampler", actor_loss, self.actor.parameters(), alpha, replay_data)
        self._clip_grad_norm(self.actor.parameters())
        self.actor.optimizer.step()

        actions = pre_tanh.detach().tanh()  # [batch, K, D], in [-1, 1]^D
        sampler_stats = {
            "actor_loss": actor_loss.detach(),
            "kernel_bandwidth": kernel.bandwidth.mean(),
            "saturated_fraction": (actions.abs() > SATURATION_THRESHOLD).float().mean(),
        }
        if with_entropy:
            return kozachenko_leonenko_entropy(actions).mean(), sampler_stats
        self._logged_sampler_actions: th.Tensor | None = actions  # [batch, K, D], for dump_logs
        return None, sampler_stats

    def dump_logs(self) -> None:
        """SB3's ``dump_logs``, with ``train/entropy`` estimated now when the temperature is fixed or scheduled.

        The sampler's entropy then serves only the log, so ``train()`` keeps the last gradient step's
        particles and their Kozachenko-Leonenko estimate (``sb3_sql.entropy``) is computed here, once
        per written log, instead of at every gradient step: the same value as an estimate at that step.
        """
        actions = getattr(self, "_logged_sampler_actions", None)
        if actions is not None:
            self.logger.record("train/entropy", kozachenko_leonenko_entropy(actions).mean().item())
            self._logged_sampler_actions = None
        super().dump_logs()

    def _temperature_step(
        self, entropy: th.Tensor, alpha: float | th.Tensor, replay_data: ReplayBufferSamples | DictReplayBufferSamples
    ) -> th.Tensor:
        """One step of the automatic temperature, as in SAC: ``alpha`` rises when the entropy is below the target.

        :param entropy: the policy's entropy at the minibatch states (nats), a scalar without gradient.
        :return: the temperature loss ``log(alpha) * (entropy - target_entropy)``, detached.
        """
        assert self.log_ent_coef is not None and self.ent_coef_optimizer is not None
        ent_coef_loss = (self.log_ent_coef * (entropy - float(self.target_entropy))).sum()
        self.ent_coef_optimizer.zero_grad()
        ent_coef_loss.backward()
        check_finite_update("temperature", ent_coef_loss, [self.log_ent_coef], alpha, replay_data)  # type: ignore[list-item]
        self.ent_coef_optimizer.step()
        return ent_coef_loss.detach()

    def _critic_loss(self, current_q_values: Sequence[th.Tensor], target_q_values: th.Tensor) -> th.Tensor:
        """The soft Q regression loss summed over the critics: half the squared residual (Eq. 11) or its Huber form.

        :param current_q_values: one ``[batch, 1]`` tensor per critic.
        :param target_q_values: the soft Bellman targets, ``[batch, 1]``, without gradient.
        """
        if self.critic_loss == "huber":
            losses = [F.smooth_l1_loss(current_q, target_q_values) for current_q in current_q_values]
        else:
            losses = [0.5 * F.mse_loss(current_q, target_q_values) for current_q in current_q_values]
        return th.stack(losses).sum()

    def _clip_grad_norm(self, parameters: Iterable[th.nn.Parameter]) -> None:
        if self.max_grad_norm is not None:
            th.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)

    def current_ent_coef(self) -> float:
        """The temperature ``alpha`` now (reward units).

        The learnt one (``"auto"``: the policy's ``log_ent_coef``), or the value of the setting: the
        schedule's at the current progress, or ``ent_coef`` itself. The policy's ``log_ent_coef`` holds a
        fixed or scheduled value too, from the last ``train()`` or ``predict()`` call
        (``_sync_policy_temperature``), in float32.

        :raises ValueError: if the schedule's value now, or the learnt temperature, is not a positive
            finite float: no gradient step or action uses it.
        """
        if isinstance(self.ent_coef, str):
            return self._check_temperature_value(float(self.policy.log_ent_coef.detach().exp()), "the learnt log_ent_coef")
        if callable(self.ent_coef):
            source = f"the ent_coef schedule at progress_remaining={self._current_progress_remaining:g}"
            return self._check_temperature_value(self.ent_coef(self._current_progress_remaining), source)
        return float(self.ent_coef)

    @property
    def ent_coef_tensor(self) -> th.Tensor | None:
        """SAC's fixed temperature as a tensor: ``current_ent_coef()``, shape ``[]``; None with ``ent_coef="auto"``."""
        if isinstance(self.ent_coef, str):
            return None
        return th.tensor(self.current_ent_coef(), device=self.device)

    def sampler_loss(self, observations: PyTorchObs, alpha: float | th.Tensor) -> tuple[th.Tensor, KernelOutput, th.Tensor]:
        """The amortized SVGD loss of the sampler on a batch of states (Eq. 13 and 14).

        The energy is ``self.critic`` (its parameters get no gradient); composition
        (``sb3_sql.compose``) calls this with a composed critic.

        :param observations: states, ``batch`` of them.
        :param alpha: the temperature (reward units): a float, or a tensor of shape ``[1]`` or ``[]``.
        :return: the loss whose gradient moves the sampler along the Stein direction (a scalar),
            the kernel (its ``bandwidth`` is logged), and the pre-tanh particles ``[batch, K, D]``.
        """
        n_fixed = self.kernel_n_particles - int(self.kernel_n_particles * self.kernel_update_ratio)
        # Sampler particles [batch, K, D]: the first K - int(K * ratio) are fixed, the rest updated.
        pre_tanh = self.actor.pre_tanh_particles(observations, self.kernel_n_particles, n_detached=n_fixed)
        updated = pre_tanh[:, n_fixed:]
        # The score grad log p is needed at the fixed particles (Eq. 13) and, with the KL term, at the
        # updated ones too: one critic pass over those particles as a leaf, input gradients only.
        n_scored = self.kernel_n_particles if self.sampler_kl_coef > 0 else n_fixed
        if self.particle_space == "pre_tanh":
            # log p(u) = Q(s, tanh u) / alpha + sum_d log(1 - tanh^2 u_d)
            scored = pre_tanh[:, :n_scored].detach().requires_grad_(True)
            scored_q = self._svgd_policy.particle_q_values(self._continuous_critic, observations, th.tanh(scored))
            log_p = scored_q / alpha + squash_log_jacobian(scored)
            updated_particles = updated
        else:
            # Reference code: particles are actions, log p(a) = Q(s, a) / alpha + sum_d log(1 - a_d^2 + eps)
            scored = th.tanh(pre_tanh[:, :n_scored].detach()).requires_grad_(True)
            scored_q = self._svgd_policy.particle_q_values(self._continuous_critic, observations, scored)
            log_p = scored_q / alpha + post_tanh_log_correction(scored)
            updated_particles = th.tanh(updated)
        (score,) = th.autograd.grad(log_p.sum(), scored)  # [batch, n_scored, D], critic untouched
        fixed_particles, grad_log_p = scored[:, :n_fixed].detach(), score[:, :n_fixed]

        # Stein variational direction with the adaptive RBF kernel (Eq. 13).
        kernel = adaptive_isotropic_gaussian_kernel(
            fixed_particles,
            updated_particles.detach(),
            bandwidth_scales(self.kernel_bandwidth, n_fixed, self.kernel_n_particles),
        )
        direction = stein_direction(kernel, grad_log_p)  # [batch, Ky, D]
        if self.sampler_kl_coef > 0:
            # Each updated particle also follows its own score (the nearest-neighbour entropy gradient
            # is added below): together the gradient of -KL(q || p), which has the same fixed point.
            direction = direction + self.sampler_kl_coef * score[:, n_fixed:]
        # The sampler follows the direction through the chain rule (Eq. 14): a sum, not a mean.
        actor_loss = -(updated_particles * direction).sum()
        if self.sampler_kl_coef > 0:
            dim = updated_particles.shape[-1]
            log_distances = nearest_neighbour_log_distances(
                updated_particles, fixed_particles, order=repulsion_neighbour_order(dim)
            )
            actor_loss = actor_loss - self.sampler_kl_coef * dim * log_distances.sum()
        return actor_loss, kernel, pre_tanh

    def learn(
        self: SelfSQL,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "SQL",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfSQL:
        """SB3's ``learn``, after checking ``total_timesteps``.

        :raises ValueError: if ``total_timesteps`` is not a finite number ``>= 0``.
        """
        if not (_is_real(total_timesteps) and np.isfinite(total_timesteps) and total_timesteps >= 0):
            raise ValueError(
                f"total_timesteps must be a number of environment steps >= 0, got {total_timesteps!r}: "
                "to continue a run pass the steps still to do, with reset_num_timesteps=False."
            )
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfSQL],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs,
    ) -> SelfSQL:
        """SB3's ``BaseAlgorithm.load``, after checking that ``path`` is a complete SB3 model archive.

        :raises FileNotFoundError: if there is no file at ``path``.
        :raises ValueError: if the file is not an SB3 archive or is truncated (``check_model_archive``),
            was saved by another algorithm (its policy does not fit SQL), holds invalid
            hyperparameters (a learnt temperature that is not positive and finite included), or if
            ``env``'s spaces differ from the saved ones (SB3).
        """
        if isinstance(path, (str, pathlib.Path)):
            check_model_archive(path)
        model = super().load(
            path,
            env=env,
            device=device,
            custom_objects=custom_objects,
            print_system_info=print_system_info,
            force_reset=force_reset,
            **kwargs,
        )
        if isinstance(model.ent_coef, str):
            try:
                model.current_ent_coef()
            except ValueError as error:
                raise ValueError(f"{path!r} holds a learnt temperature that cannot be used: {error}") from None
        return model

    @staticmethod
    def _wrap_env(env: GymEnv, verbose: int = 0, monitor_wrapper: bool = True) -> VecEnv:
        """SB3's ``_wrap_env``, with a Gymnasium environment wrapped in ``ObservationShapeCheck`` first.

        ``DummyVecEnv`` copies each observation into an array of the space's shape, broadcasting one
        of a smaller shape silently; the check refuses it at the environment.
        """
        if not isinstance(env, VecEnv) and not is_wrapped(env, ObservationShapeCheck):  # type: ignore[arg-type]
            env = ObservationShapeCheck(env)  # type: ignore[arg-type]
        return OffPolicyAlgorithm._wrap_env(env, verbose, monitor_wrapper)

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """SB3's ``_store_transition``, after ``check_transitions``: a faulty transition never enters the buffer.

        The quantities checked are those SB3 stores (with ``VecNormalize``, the original observations and
        rewards). After the ``ValueError`` the buffer and ``_last_obs`` are as before the faulty step.
        """
        vec_normalize = self._vec_normalize_env
        if vec_normalize is None:
            observations, next_observations, rewards = self._last_obs, new_obs, reward
        else:
            observations = self._last_original_obs
            next_observations, rewards = vec_normalize.get_original_obs(), vec_normalize.get_original_reward()
        terminal_observations = {
            index: info["terminal_observation"]
            for index, (done, info) in enumerate(zip(dones, infos, strict=True))
            if done and info.get("terminal_observation") is not None
        }
        check_transitions(
            self.observation_space,
            self.num_timesteps,
            observations=observations,  # type: ignore[arg-type]
            next_observations=next_observations,
            rewards=rewards,
            terminal_observations=terminal_observations,
        )
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def _excluded_save_params(self) -> list[str]:
        # log_ent_coef is the policy's (saved with it) and, when learnt, also a PyTorch variable; the particles
        # kept for the next log are not part of the model.
        excluded = ["actor", "critic", "critic_target", "log_ent_coef", "_logged_sampler_actions"]
        return [*super()._excluded_save_params(), *excluded]

    def _sync_policy_temperature(self) -> None:
        """A fixed or scheduled ``ent_coef``: write its current value into the policy's ``log_ent_coef``.

        ``ent_coef`` is the setting and the policy's ``log_ent_coef`` the temperature in use (as SB3
        writes the learning-rate schedule into the optimizers), so a value given to
        ``SQL.load(path, ent_coef=x)`` or set as ``model.ent_coef = x`` takes effect at the next
        ``train()`` or ``predict()`` call, for both action kinds. A learnt temperature is left alone.
        """
        if not isinstance(self.ent_coef, str):
            self.policy.set_ent_coef(self.current_ent_coef())

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict``, at the current temperature (see ``_sync_policy_temperature``).

        :raises ValueError: for a stochastic action, if the temperature is not a positive finite float
            (``current_ent_coef``).
        """
        self._sync_policy_temperature()
        if not deterministic and isinstance(self.ent_coef, str):
            self.current_ent_coef()  # a learnt temperature is checked where a stochastic action uses it
        return super().predict(observation, state, episode_start, deterministic)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        networks = (
            ["policy", "critic.optimizer"] if self.discrete_actions else ["policy", "actor.optimizer", "critic.optimizer"]
        )
        if self.ent_coef_optimizer is None:
            return networks, []
        # A learnt temperature is the policy's log_ent_coef, saved with the policy; it is also saved as a
        # PyTorch variable, as in SAC (where continuous models kept it before their policy held it).
        return [*networks, "ent_coef_optimizer"], ["log_ent_coef"]


def _is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or NumPy; ``bool`` is not one)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_count(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or NumPy; ``bool`` is not one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))

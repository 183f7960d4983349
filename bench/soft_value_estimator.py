"""The importance-sampled soft value in high dimension: error of the M = 16 estimate against a large-M one.

SQL's soft Q target needs the soft value of the next state (Haarnoja et al., ICML 2017, Eq. 7-8),
``V(s) = alpha * log integral_{[-1, 1]^D} exp(Q(s, a) / alpha) da``, which it estimates by
importance sampling (Eq. 10) with ``M = value_n_particles`` actions drawn uniformly on the box
(``sb3_sql.soft_value.importance_sampled_soft_value``)::

    V(s) ~ alpha * [ logsumexp_j(Q(s, a_j) / alpha) - log M + D * log 2 ]

With 17 action dimensions (Humanoid) almost no uniform draw lands where ``exp(Q / alpha)`` holds
its mass. This script measures the estimator's error on states of a trained model as a function
of the dimension ``D`` of the integral: over the first ``D`` action dimensions, the others fixed
at one sampler action ``a*`` per state,

    V_D(s) = alpha * log integral_{[-1, 1]^D} exp(Q(s, [a_1..a_D, a*_{D+1}..a*_{dim A}]) / alpha) da_1..da_D

(``D = dim A`` is the soft value itself). The soft Q-function is the model's target critic (the
minimum over its critics, as SQL's target uses it) and ``alpha`` the model's temperature
(``current_ent_coef()``). The states are next observations of the replay buffer of a model
trained here (``--env``, ``--train-steps``, the shipped hyperparameters; the model and the states
are saved to ``--out``), or, with ``--model``, the saved ``--states`` or observations of a rollout
of that model's sampler.

For each ``D`` and each proposal, ``--repeats`` independent estimates with ``--m`` draws per state
are compared with two large-M references, each of ``2 * --m-ref`` draws in two independent halves
(their disagreement shows whether a reference has converged): the uniform estimate (the same
estimator, many more draws) and the ``gaussian`` proposal's. Both estimate ``exp(V / alpha)``
without bias and ``V`` with a downward bias (Jensen), so where they disagree the larger one is the
closer. Reported, per ``D`` and proposal, in nats (divided by ``alpha``; multiply by ``alpha`` for
reward units, also in the CSV): the standard deviation of the estimate over repeats (root mean
over states of the variance); against each reference the bias (mean error) and the RMSE; against
the gaussian one also the spread over states of the per-state bias (its state-dependent part,
which a constant offset of the soft Q-function cannot absorb); for the references: the mean
absolute gap between the halves of each, the mean gap gaussian minus uniform, and the median
effective sample size ``(sum w)^2 / sum w^2`` of each half's weights (of ``--m-ref`` draws).
The table is printed and written to ``<out>/<env>_<steps>_<buffer|rollout|states>.csv``.

Proposals (``--proposals``); the sampler ones are defensive mixtures, a share ``--mix-uniform`` of
the ``M`` draws from the uniform (``round(mix_uniform * M)``, at least one) and the rest from a
density fitted on ``--fit-particles`` pre-tanh particles of SQL's sampler at the state (first ``D``
coordinates), weighted by the mixture density with the uniform's realised share (balance
heuristic, ``sb3_sql.soft_value.defensive_mixture_log_density``), so the weights are bounded by
``2^D / mix_uniform`` times the integrand:

- ``uniform``: Eq. 10, SQL's default (``value_proposal="uniform"``).
- ``gaussian``: a Gaussian fitted to the particles in pre-tanh space (covariance shrunk towards its
  diagonal), drawn from and pushed through tanh; its density is exact (Gaussian times the tanh
  Jacobian), so ``exp(V / alpha)`` is estimated without bias. The fit is the library's
  (``sb3_sql.soft_value.SquashedGaussianProposal``).
- ``sql``: SQL's own estimate with ``value_proposal="sampler"`` (``SVGDPolicy.soft_value``): the
  ``gaussian`` proposal as the library draws it, fitted on 32 particles
  (``sb3_sql.soft_value.PROPOSAL_FIT_PARTICLES``) whatever ``--fit-particles``; only at ``D = dim A``.
- ``kde``: a Gaussian kernel density estimate on the particles (Scott's bandwidth, diagonal),
  drawn from (a particle plus kernel noise); exact density as well.
- ``particles``: fresh sampler particles as the draws, their density estimated by the ``kde`` of
  the fitted particles; the density is only an estimate, so ``exp(V / alpha)`` is biased too.

Every estimate of ``V`` is biased downwards by Jensen's inequality (the log of an unbiased estimate
of the partition function); the uniform one heavily at high ``D``.

    python bench/soft_value_estimator.py                                   # Humanoid-v5, trained here
    python bench/soft_value_estimator.py --train-steps 8000 --dims 1 2 4 8 12 17 --n-states 128
    python bench/soft_value_estimator.py --model bench/results/curves/Humanoid-v5_SQL_seed0.zip
    python bench/soft_value_estimator.py --env Pendulum-v1 --train-steps 2000
"""

import argparse
import csv
import math
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th

from sb3_sql import SQL
from sb3_sql.policies import SVGDPolicy
from sb3_sql.soft_value import (
    ACTION_CLAMP,
    PROPOSAL_COVARIANCE_JITTER,
    SquashedGaussianProposal,
    defensive_mixture_log_density,
    importance_sampled_soft_value,
    importance_sampled_soft_value_with_proposal,
    n_uniform_draws,
)
from sb3_sql.svgd import squash_log_jacobian
from sb3_sql.zoo import load_hyperparams

PROPOSALS = ("uniform", "gaussian", "sql", "kde", "particles")
FIELDS = (
    "env",
    "train_steps",
    "alpha",
    "D",
    "proposal",
    "m",
    "repeats",
    "n_states",
    "std_nats",
    "bias_nats",
    "rmse_nats",
    "bias_gaussian_ref_nats",
    "rmse_gaussian_ref_nats",
    "bias_spread_gaussian_ref_nats",
    "std",
    "bias",
    "rmse",
    "bias_gaussian_ref",
    "rmse_gaussian_ref",
    "uniform_ref_half_gap_nats",
    "gaussian_ref_half_gap_nats",
    "gaussian_minus_uniform_ref_nats",
    "ess_uniform_ref",
    "ess_gaussian_ref",
    "m_ref",
)

#: Errors also written in reward units (the ``_nats`` value times ``alpha``).
REWARD_UNIT_KEYS = ("std", "bias", "rmse", "bias_gaussian_ref", "rmse_gaussian_ref")
#: The printed table: (header, CSV field, width, format).
COLUMNS = (
    ("D", "D", 3, "d"),
    ("proposal", "proposal", 9, "s"),
    ("std", "std_nats", 7, ".2f"),
    ("bias u", "bias_nats", 8, ".2f"),
    ("rmse u", "rmse_nats", 7, ".2f"),
    ("bias g", "bias_gaussian_ref_nats", 8, ".2f"),
    ("rmse g", "rmse_gaussian_ref_nats", 7, ".2f"),
    ("spread g", "bias_spread_gaussian_ref_nats", 8, ".2f"),
    ("u gap", "uniform_ref_half_gap_nats", 6, ".2f"),
    ("g gap", "gaussian_ref_half_gap_nats", 6, ".2f"),
    ("g - u", "gaussian_minus_uniform_ref_nats", 7, ".2f"),
    ("ESS u", "ess_uniform_ref", 8, ".1f"),
    ("ESS g", "ess_gaussian_ref", 8, ".1f"),
)


class FixedStateQ:
    """``Q(s, [a_1..a_D, a*_{D+1..}])`` of a critic at fixed states, as a function of the first ``D`` action coordinates.

    For an MLP critic whose first layer is linear, the contributions of the state features and of
    the fixed coordinates to that layer are computed once per state, so one evaluation costs the
    rest of the network; any other critic goes through ``SVGDPolicy.particle_q_values``.

    :param critic: the (target) critic, one or more soft Q-networks; the minimum is taken.
    :param obs: observations as tensors, ``batch`` of them.
    :param fixed_actions: ``a*``, shape ``[batch, dim A]`` in ``[-1, 1]``.
    :param dim: ``D``, the free coordinates (the first ``D``).
    """

    def __init__(self, critic, obs: th.Tensor, fixed_actions: th.Tensor, dim: int):
        self.critic, self.obs, self.fixed, self.dim = critic, obs, fixed_actions, dim
        first_layers = [q_net[0] if isinstance(q_net, th.nn.Sequential) else None for q_net in critic.q_networks]
        self.fast = all(isinstance(layer, th.nn.Linear) for layer in first_layers)
        if self.fast:
            with th.no_grad():
                features = critic.extract_features(obs, critic.features_extractor)  # [batch, F]
                n_features = features.shape[-1]
                state_input = th.cat([features, fixed_actions[:, dim:]], dim=-1)
                # per network: the first layer's pre-activation without the free coordinates [batch, H],
                # and its weights on the free coordinates [D, H]
                self.parts = [
                    (
                        state_input @ th.cat([layer.weight[:, :n_features], layer.weight[:, n_features + dim :]], 1).T
                        + layer.bias,
                        layer.weight[:, n_features : n_features + dim].T,
                    )
                    for layer in first_layers
                ]

    def __call__(self, free: th.Tensor) -> th.Tensor:
        """Soft Q-values at the free coordinates ``free`` ``[batch, N, D]``; returns ``[batch, N]`` (reward units)."""
        with th.no_grad():
            if not self.fast:
                fixed = self.fixed[:, None, self.dim :].expand(-1, free.shape[1], -1)
                return SVGDPolicy.particle_q_values(self.critic, self.obs, th.cat([free, fixed], dim=-1))
            values = [
                q_net[1:](state_part[:, None] + free @ free_weight).squeeze(-1)
                for q_net, (state_part, free_weight) in zip(self.critic.q_networks, self.parts, strict=True)
            ]
            return th.stack(values).min(dim=0).values


def log_uniform_density(free: th.Tensor) -> th.Tensor:
    """Log density of the uniform on ``[-1, 1]^D`` at ``free`` ``[..., D]``: ``-D log 2``, shape ``[...]``."""
    return th.full(free.shape[:-1], -free.shape[-1] * math.log(2.0), dtype=free.dtype)


class SamplerFit:
    """A density on ``[-1, 1]^D`` fitted, per state, to pre-tanh particles of SQL's sampler.

    ``kind="gaussian"``: the library's ``SquashedGaussianProposal`` (``u ~ N(mean, cov)``, the
    covariance shrunk towards its diagonal); ``kind="kde"``: an equal-weight mixture of Gaussians
    centred at the particles, with diagonal bandwidths ``K^(-1/(D+4)) * std_d`` (Scott's rule). The
    action is ``tanh(u)`` and its log density ``log p(u) - sum_d log(1 - tanh^2 u_d)``.

    :param particles: pre-tanh particles ``[batch, K, D]``.
    :param kind: ``"gaussian"`` or ``"kde"``.
    """

    def __init__(self, particles: th.Tensor, kind: str):
        self.kind, self.particles = kind, particles
        n_particles, dim = particles.shape[-2:]
        if kind == "gaussian":
            self.gaussian = SquashedGaussianProposal(particles)
        else:
            centred = particles - particles.mean(dim=1, keepdim=True)
            std = centred.pow(2).sum(dim=1).div(max(n_particles - 1, 1)).sqrt()  # [batch, D]
            jitter = math.sqrt(PROPOSAL_COVARIANCE_JITTER)
            self.bandwidth = (n_particles ** (-1.0 / (dim + 4)) * std + jitter)[:, None]  # [batch, 1, D]

    def sample_pre_tanh(self, n: int) -> th.Tensor:
        """``n`` draws per state in pre-tanh space, ``[batch, n, D]``."""
        if self.kind == "gaussian":
            return self.gaussian.sample_pre_tanh(n)
        index = th.randint(self.particles.shape[1], (self.particles.shape[0], n))
        centres = th.gather(self.particles, 1, index[..., None].expand(-1, -1, self.particles.shape[-1]))
        return centres + self.bandwidth * th.randn_like(centres)

    def log_density(self, free: th.Tensor) -> th.Tensor:
        """Log density at actions ``free`` ``[batch, N, D]`` in ``[-1, 1]``; returns ``[batch, N]``."""
        if self.kind == "gaussian":
            return self.gaussian.log_density(free)
        pre_tanh = th.atanh(free.clamp(-1 + ACTION_CLAMP, 1 - ACTION_CLAMP))
        z = (pre_tanh[:, :, None] - self.particles[:, None]) / self.bandwidth[:, None]  # [batch, N, K, D]
        log_norm = th.log(self.bandwidth).sum(-1, keepdim=True) + 0.5 * free.shape[-1] * math.log(2 * math.pi)
        log_kernels = -0.5 * z.pow(2).sum(-1) - log_norm  # [batch, N, K]
        log_p = th.logsumexp(log_kernels, dim=-1) - math.log(self.particles.shape[1])
        return log_p - squash_log_jacobian(pre_tanh)


#: draws(n) -> (actions [batch, n, D] in [-1, 1], log density of the proposal there [batch, n])
Draws = Callable[[int], tuple[th.Tensor, th.Tensor]]


def uniform_draws(batch: int, dim: int) -> Draws:
    """Uniform draws on ``[-1, 1]^D`` (Eq. 10's proposal)."""

    def draws(n: int) -> tuple[th.Tensor, th.Tensor]:
        free = 2.0 * th.rand(batch, n, dim) - 1.0
        return free, log_uniform_density(free)

    return draws


def mixture_draws(fit: SamplerFit, mix_uniform: float, sampler_draws: Callable[[int], th.Tensor] | None = None) -> Draws:
    """Defensive mixture: ``n_u = round(mix_uniform * n)`` uniform draws (at least one) and the rest from the sampler's fit.

    The log density is the mixture's, ``log(s * 2^-D + (1 - s) * p_fit(a))`` with the realised share
    ``s = n_u / n``, at every draw (balance heuristic with fixed counts: ``exp`` of the estimate stays
    unbiased), as SQL's ``value_proposal="sampler"``.

    :param fit: the sampler's fitted density.
    :param mix_uniform: the uniform's share of the draws, in ``[0, 1]`` (0: the fit alone).
    :param sampler_draws: if given, ``n -> pre-tanh [batch, n, D]`` fresh sampler particles, drawn
        instead of the fit (the ``particles`` proposal; then the fit only estimates their density).
    """
    batch, _, dim = fit.particles.shape

    def draws(n: int) -> tuple[th.Tensor, th.Tensor]:
        n_uniform = n_uniform_draws(n, mix_uniform) if mix_uniform > 0 else 0
        component = sampler_draws if sampler_draws is not None else fit.sample_pre_tanh
        free = th.cat([2.0 * th.rand(batch, n_uniform, dim) - 1.0, th.tanh(component(n - n_uniform))], dim=1)
        if n_uniform == 0:
            return free, fit.log_density(free)
        return free, defensive_mixture_log_density(fit.log_density(free), dim, n_uniform / n)

    return draws


def log_partition(q_fn: Callable[[th.Tensor], th.Tensor], draws: Draws, n: int, alpha: float, chunk: int = 4096):
    """Importance-sampling estimate of ``log integral exp(Q / alpha) da`` (nats) from ``n`` draws, drawn in chunks.

    ``log Z ~ logsumexp_j(Q(a_j) / alpha - log q(a_j)) - log n``, the library's
    ``importance_sampled_soft_value_with_proposal`` of ``Q / alpha`` at temperature 1; with the
    uniform proposal ``alpha * log Z`` is Eq. 10's soft value.

    :return: ``log Z`` estimates ``[batch]`` and the effective sample size ``(sum w)^2 / sum w^2`` ``[batch]``.
    """
    scaled_q_values, log_q_values = [], []  # per chunk, [batch, chunk]
    for start in range(0, n, chunk):
        free, log_q = draws(min(chunk, n - start))
        scaled_q_values.append(q_fn(free) / alpha)
        log_q_values.append(log_q)
    scaled_q, log_q = th.cat(scaled_q_values, dim=-1), th.cat(log_q_values, dim=-1)  # [batch, n]
    log_w = scaled_q - log_q
    ess = th.exp(2 * th.logsumexp(log_w, dim=-1) - th.logsumexp(2 * log_w, dim=-1))
    return importance_sampled_soft_value_with_proposal(scaled_q, log_q, 1.0), ess


def uniform_soft_value(q_fn: Callable[[th.Tensor], th.Tensor], batch: int, dim: int, m: int, alpha: float) -> th.Tensor:
    """SQL's estimate (Eq. 10) with ``m`` uniform draws per state, ``[batch]`` (reward units)."""
    free, _ = uniform_draws(batch, dim)(m)
    return importance_sampled_soft_value(q_fn(free), alpha, dim)


def sql_soft_value(model: SQL, obs: th.Tensor, alpha: float, args) -> th.Tensor:
    """SQL's own estimate with ``value_proposal="sampler"`` and ``--m`` draws (``SVGDPolicy.soft_value``), ``[batch, 1]``."""
    return model.policy.soft_value(
        model.critic_target, obs, alpha, n_particles=args.m, proposal="sampler", uniform_share=args.mix_uniform
    )


def fixed_actions_of(model: SQL, obs: th.Tensor) -> th.Tensor:
    """One sampler action per state, ``[batch, dim A]``: the fixed coordinates ``a*``."""
    with th.no_grad():
        return th.tanh(model.actor.pre_tanh_particles(obs, 1))[:, 0]


def make_draws(model: SQL, obs: th.Tensor, dim: int, proposal: str, args) -> Draws:
    """The ``proposal``'s draws over the first ``dim`` coordinates at states ``obs``."""
    if proposal == "uniform":
        return uniform_draws(obs.shape[0], dim)
    with th.no_grad():
        particles = model.actor.pre_tanh_particles(obs, args.fit_particles)[..., :dim]
        fit = SamplerFit(particles, "gaussian" if proposal == "gaussian" else "kde")

    def sampler_draws(n: int) -> th.Tensor:
        with th.no_grad():
            return model.actor.pre_tanh_particles(obs, n)[..., :dim]

    return mixture_draws(fit, args.mix_uniform, sampler_draws if proposal == "particles" else None)


def measure_batch(model: SQL, obs: th.Tensor, fixed: th.Tensor, dim: int, alpha: float, args) -> dict[str, th.Tensor]:
    """References and repeated ``M``-draw estimates of ``V_D / alpha`` (nats) at a batch of states."""
    batch = obs.shape[0]
    q_fn = FixedStateQ(model.critic_target, obs, fixed, dim)
    out = {}
    for half in ("1", "2"):
        out["ref_u" + half], out["ess_u" + half] = log_partition(q_fn, uniform_draws(batch, dim), args.m_ref, alpha)
        gaussian = make_draws(model, obs, dim, "gaussian", args)
        out["ref_g" + half], out["ess_g" + half] = log_partition(q_fn, gaussian, args.m_ref, alpha)
    # repeats: every state repeated R times, one independent estimate each -> [batch, R]
    obs_r, fixed_r = obs.repeat_interleave(args.repeats, 0), fixed.repeat_interleave(args.repeats, 0)
    q_fn_r = FixedStateQ(model.critic_target, obs_r, fixed_r, dim)
    for proposal in args.proposals:
        if proposal == "uniform":
            estimate = uniform_soft_value(q_fn_r, batch * args.repeats, dim, args.m, alpha) / alpha
        elif proposal == "sql":
            if dim < model.actor.action_dim:
                continue  # SQL's estimate integrates over every action dimension
            estimate = sql_soft_value(model, obs_r, alpha, args).squeeze(-1) / alpha
        else:
            estimate, _ = log_partition(q_fn_r, make_draws(model, obs_r, dim, proposal, args), args.m, alpha)
        out[proposal] = estimate.view(batch, args.repeats)
    return out


def summarize(results: dict[str, th.Tensor], proposal: str) -> dict[str, float]:
    """Error statistics (nats) of one proposal's estimates ``[n_states, R]`` against the two references."""
    # each reference pools its two halves (the log of the mean of their exp), [n_states]
    uniform = th.logaddexp(results["ref_u1"], results["ref_u2"]) - math.log(2)
    gaussian = th.logaddexp(results["ref_g1"], results["ref_g2"]) - math.log(2)
    errors, errors_g = results[proposal] - uniform[:, None], results[proposal] - gaussian[:, None]
    return {
        "std_nats": results[proposal].var(dim=1).mean().sqrt().item(),
        "bias_nats": errors.mean().item(),
        "rmse_nats": errors.pow(2).mean().sqrt().item(),
        "bias_gaussian_ref_nats": errors_g.mean().item(),
        "rmse_gaussian_ref_nats": errors_g.pow(2).mean().sqrt().item(),
        "bias_spread_gaussian_ref_nats": errors_g.mean(dim=1).std().item(),
        "uniform_ref_half_gap_nats": (results["ref_u1"] - results["ref_u2"]).abs().mean().item(),
        "gaussian_ref_half_gap_nats": (results["ref_g1"] - results["ref_g2"]).abs().mean().item(),
        "gaussian_minus_uniform_ref_nats": (gaussian - uniform).mean().item(),
        "ess_uniform_ref": th.cat([results["ess_u1"], results["ess_u2"]]).median().item(),
        "ess_gaussian_ref": th.cat([results["ess_g1"], results["ess_g2"]]).median().item(),
    }


def train_and_sample_states(args) -> tuple[SQL, th.Tensor]:
    """SQL trained on ``--env`` with the shipped hyperparameters; ``--n-states`` next observations of its replay buffer."""
    kwargs = load_hyperparams(args.env)
    kwargs.pop("n_timesteps", None)
    kwargs.pop("policy", None)
    model = SQL("MlpPolicy", args.env, seed=args.seed, **kwargs)
    start = time.process_time()
    model.learn(args.train_steps)
    print(f"trained {args.env} for {args.train_steps} steps in {time.process_time() - start:.0f} CPU s")
    buffer = model.replay_buffer
    size = buffer.buffer_size if buffer.full else buffer.pos
    index = np.random.default_rng(args.seed).choice(size, min(args.n_states, size), replace=False)
    next_obs = buffer.next_observations[index, 0]
    model.save(args.out / f"{args.env}_sql_{args.train_steps}.zip")
    np.save(args.out / f"{args.env}_sql_{args.train_steps}_states.npy", next_obs)
    return model, th.as_tensor(next_obs, dtype=th.float32)


def rollout_states(model: SQL, args) -> th.Tensor:
    """``--n-states`` observations of one rollout of ``model``'s sampler on ``--env`` (reset at episode ends)."""
    env = gym.make(args.env)
    obs, _ = env.reset(seed=args.seed)
    states = []
    while len(states) < args.n_states:
        states.append(obs)
        action, _ = model.predict(obs, deterministic=False)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    return th.as_tensor(np.array(states), dtype=th.float32)


def time_estimators(model: SQL, obs: th.Tensor, alpha: float, args) -> None:
    """Seconds per call of each proposal's estimate at full ``dim A`` (``uniform``, ``sql``: SQL's ``policy.soft_value``)."""
    batch = obs[: model.batch_size]
    dim = model.actor.action_dim
    fixed = fixed_actions_of(model, batch)
    timings = {}
    for proposal in args.proposals:
        start = time.perf_counter()
        for _ in range(20):
            if proposal == "uniform":
                model.policy.soft_value(model.critic_target, batch, alpha, n_particles=args.m)
            elif proposal == "sql":
                sql_soft_value(model, batch, alpha, args)
            else:
                q_fn = FixedStateQ(model.critic_target, batch, fixed, dim)
                log_partition(q_fn, make_draws(model, batch, dim, proposal, args), args.m, alpha)
        timings[proposal] = (time.perf_counter() - start) / 20 * 1e3
    listed = ", ".join(f"{name} {ms:.2f}" for name, ms in timings.items())
    print(f"ms per soft value of {batch.shape[0]} states, D = {dim}, M = {args.m}: {listed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Humanoid-v5")
    parser.add_argument("--model", type=Path, help="a trained SQL zip on --env (states: --states or a rollout)")
    parser.add_argument("--states", type=Path, help="with --model: observations [n, obs_dim] saved by a training run (.npy)")
    parser.add_argument("--train-steps", type=int, default=10_000, help="without --model: SQL's training steps")
    parser.add_argument("--n-states", type=int, default=256)
    parser.add_argument("--dims", type=int, nargs="+", help="the D to measure; all 1..dim A by default")
    parser.add_argument("--m", type=int, default=16, help="draws per estimate (SQL's value_n_particles)")
    parser.add_argument("--repeats", type=int, default=64, help="independent M-draw estimates per state")
    parser.add_argument("--m-ref", type=int, default=2**16, help="draws of each half of the reference")
    parser.add_argument("--proposals", nargs="+", default=list(PROPOSALS), choices=PROPOSALS)
    parser.add_argument("--mix-uniform", type=float, default=0.25, help="uniform share of a sampler proposal's draws")
    parser.add_argument("--fit-particles", type=int, default=32, help="sampler particles the density is fitted on")
    parser.add_argument("--state-batch", type=int, default=32, help="states measured together (memory)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/soft_value_estimator"))
    args = parser.parse_args()
    th.set_num_threads(1)
    th.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    if args.model:
        model = SQL.load(args.model, device="cpu")
        states = th.as_tensor(np.load(args.states)[: args.n_states]) if args.states else rollout_states(model, args)
        train_steps, source = model.num_timesteps, "states" if args.states else "rollout"
    else:
        (model, states), train_steps, source = train_and_sample_states(args), args.train_steps, "buffer"
    alpha = model.current_ent_coef()
    dims = args.dims or list(range(1, model.actor.action_dim + 1))
    print(f"{args.env}: alpha {alpha:g}, {states.shape[0]} states, M {args.m} x {args.repeats} repeats, M_ref 2x{args.m_ref}")
    time_estimators(model, states, alpha, args)
    fixed = fixed_actions_of(model, states)

    rows = []
    print("nats (error / alpha); u: uniform reference, g: gaussian reference (each 2 halves of M_ref draws)")
    print(" ".join(f"{header:>{width}}" for header, _, width, _ in COLUMNS))
    for dim in dims:
        start = time.process_time()
        parts = [
            measure_batch(model, states[i : i + args.state_batch], fixed[i : i + args.state_batch], dim, alpha, args)
            for i in range(0, states.shape[0], args.state_batch)
        ]
        results = {key: th.cat([part[key] for part in parts]) for key in parts[0]}
        for proposal in (name for name in args.proposals if name in results):
            stats = summarize(results, proposal)
            row = {"env": args.env, "train_steps": train_steps, "alpha": alpha, "D": dim, "proposal": proposal, "m": args.m}
            row |= {"repeats": args.repeats, "n_states": states.shape[0], "m_ref": args.m_ref, **stats}
            row |= {key: stats[f"{key}_nats"] * alpha for key in REWARD_UNIT_KEYS}
            rows.append(row)
            print(" ".join(format(row[key], f">{width}{spec}") for _, key, width, spec in COLUMNS))
        print(f"    (D = {dim}: {time.process_time() - start:.0f} CPU s)")

    path = args.out / f"{args.env}_{train_steps}_{source}.csv"  # where the states come from
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"CSV: {path}")


if __name__ == "__main__":
    main()

"""The sampler at the states it visits: its entropy, and how far it is from exp(Q / alpha) there.

Loads a saved SQL model (e.g. a ``bench/curves.py`` cell's ``.zip``) and plays 2000 steps of its
stochastic policy, keeping every tenth state. Two measurements at those states:

- **Entropy** (default): at each state, K sampler actions and their Kozachenko-Leonenko entropy
  estimate (``sb3_sql.entropy``, the estimate the automatic temperature uses; nats, actions scaled
  to ``[-1, 1]^D``), for K = 16 and 32. A model trained at a tuned fixed temperature tells which
  target entropy that temperature corresponds to.
- **Fidelity** (``--fidelity``): the sampler's distance from the Boltzmann policy of the model's own
  soft Q-function, ``p(a | s) = exp(Q(s, a) / alpha) / Z(s)`` on the action box (the density the
  sampler is trained to draw from; Haarnoja et al., ICML 2017, Eq. 7 with Eq. 13), ``Q`` the minimum
  of the twin critics (the sampler's own energy). Per state, ``log Z`` and the expectations under
  ``p`` are importance sampled from ``M`` draws of a defensive mixture (a quarter uniform, the rest
  a squashed Gaussian fitted to 256 sampler particles, then refitted three times to its own
  importance-weighted draws with its covariance doubled; ``sb3_sql.soft_value``), whose effective
  sample size is reported. The sampler's own entropy comes from ``N`` of its actions (the
  Kozachenko-Leonenko estimate, checked on the same number of draws of the fitted squashed
  Gaussian, whose entropy is known). Then ``KL(q || p) = -H(q) - E_q[Q / alpha] + log Z`` (nats),
  the two entropies, the expected soft Q-value under both (reward units), and the share of action
  coordinates within 0.01 of the box's edge under both.

``--acting-candidates M [M ...]`` adds the policy that acts by sampling-importance-resampling
(``acting_n_candidates=M``, ``sb3_sql.acting``): its actions have no density, so its distance is
bounded instead of estimated. With ``w = p~(u) / r(u)`` the weights of ``M`` candidates of the
proposal ``r``, ``KL(q_M || p) <= log Z - E_r[log mean_m w_m]`` (the gap of the importance-weighted
bound, Burda et al., ICLR 2016, bounds the resampled marginal's divergence: Domke and Sheldon,
NeurIPS 2018, Theorem 1); the proposal is drawn anew at each action, and the divergence of that
mixture is at most the mean over its draws (convexity). ``E_r`` is a mean over
``RESAMPLED_REPEATS`` proposals and candidate sets per state; no entropy estimator enters.

    python bench/sampler_entropy.py bench/results/curves_v2/Hopper-v5_SQL_seed0.zip Hopper-v5
    python bench/sampler_entropy.py <model.zip> HalfCheetah-v5 --fidelity
    python bench/sampler_entropy.py <model.zip> HalfCheetah-v5 --fidelity --acting-candidates 16 64 256
    python bench/sampler_entropy.py <sac_model.zip> HalfCheetah-v5 --fidelity --algo SAC

``--algo SAC`` measures SB3's SAC the same way, as the reference point: its actor against
``exp(Q / alpha)`` of its own critics (their minimum) and temperature. Its actor is a squashed
Gaussian of known density, so its entropy is the exact Monte Carlo mean of ``-log pi(a | s)``, not
an estimate from neighbours.

``--retrain N`` then trains the sampler alone (SQL's sampler loss, the critic frozen) for ``N`` more
steps on minibatches of states, and measures again after 250, 1000 and ``N`` steps: on the measured
states themselves (``--retrain-on measured``) or on 2000 others that the same policy visits
(``other``, a rollout of 10,000 steps from another seed, every fifth state). It tells whether a
gap is the sampler lagging behind the critic (both close it) or a gap of the amortized network
across states (only training on the measured states closes it). ``--fresh-sampler 256,256`` first
replaces the sampler by a freshly initialised one with those hidden layers (Adam, lr 1e-3): how well
a network of that size can be distilled from the frozen critic.
"""

import argparse
import math

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC

from sb3_sql import SQL
from sb3_sql.entropy import kozachenko_leonenko_entropy
from sb3_sql.soft_value import (
    ACTION_CLAMP,
    SquashedGaussianProposal,
    defensive_mixture_log_density,
    n_uniform_draws,
)
from sb3_sql.svgd import squash_log_jacobian

#: Sampler particles the importance-sampling proposal is fitted to, per state.
PROPOSAL_FIT = 256
#: Share of the proposal's draws that are uniform on the box (bounds every weight).
UNIFORM_SHARE = 0.25
#: Refits of the proposal to its own importance-weighted draws (adaptive importance sampling).
REFITS = 3
#: The refitted covariance is widened by this factor (heavier than the target, for stable weights).
WIDEN = 2.0
#: An action coordinate this close to -1 or 1 counts as at the box's edge.
EDGE = 0.01
#: Proposals and candidate sets per state behind the resampled policy's bound (``--acting-candidates``).
RESAMPLED_REPEATS = 64


def visited_states(model: SQL, env_id: str, steps: int = 2000, every: int = 10, seed: int = 123) -> np.ndarray:
    """Every ``every``-th observation of ``steps`` steps of the model's stochastic policy, ``[steps // every, obs_dim]``."""
    env = gym.make(env_id)
    observation, _ = env.reset(seed=seed)
    states = []
    for step in range(steps):
        if step % every == 0:
            states.append(observation)
        action, _ = model.predict(observation, deterministic=False)
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            observation, _ = env.reset()
    return np.array(states, dtype=np.float32)


def entropy_report(model: SQL, env_id: str, states: np.ndarray) -> None:
    """Print the sampler's entropy estimate per state for K = 16 and 32 (nats)."""
    with th.no_grad():
        observations, _ = model.policy.obs_to_tensor(states)
        for n_particles in (16, 32):
            actions = model.actor.pre_tanh_particles(observations, n_particles).tanh()  # [N, K, D]
            entropy = kozachenko_leonenko_entropy(actions)  # [N], nats
            print(
                f"{env_id}, ent_coef {model.current_ent_coef():.4f}, D = {actions.shape[-1]}, K = {n_particles}: "
                f"entropy estimate per state mean {entropy.mean():.2f} nats, median {entropy.median():.2f}, "
                f"over {len(states)} states"
            )


def squashed_gaussian_entropy(proposal: SquashedGaussianProposal, pre_tanh: th.Tensor) -> th.Tensor:
    """Entropy (nats) of a squashed Gaussian on the box from draws ``u`` of it, ``[batch, N, D]`` -> ``[batch]``.

    ``H(tanh u) = H(u) + E[sum_d log(1 - tanh^2 u_d)]``, the Gaussian's entropy exact and the
    Jacobian's expectation a Monte Carlo mean over the draws.
    """
    return proposal.pre_tanh_distribution.entropy().squeeze(-1) + squash_log_jacobian(pre_tanh).mean(dim=-1)


class RefittedProposal(SquashedGaussianProposal):
    """A squashed Gaussian whose pre-tanh mean and covariance are given (a weighted refit), not fitted to particles."""

    def __init__(self, mean: th.Tensor, covariance: th.Tensor):
        self.pre_tanh_distribution = th.distributions.MultivariateNormal(
            mean.unsqueeze(1), covariance_matrix=covariance.unsqueeze(1)
        )


def q_values(model: SQL | SAC, observation: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """``Q(s, a)``, the minimum over the model's critics, of actions ``[1, M, D]`` at one state; returns ``[1, M]``."""
    if isinstance(model, SQL):
        return model.policy.particle_q_values(model.critic, observation, actions)
    n_actions = actions.shape[1]
    each = model.critic(observation.expand(n_actions, -1), actions.squeeze(0))  # one [M, 1] per critic
    return th.cat(each, dim=1).min(dim=1).values.unsqueeze(0)


def temperature(model: SQL | SAC) -> float:
    """The model's temperature ``alpha`` (SAC's learnt one, or its fixed one)."""
    if isinstance(model, SQL):
        return model.current_ent_coef()
    if model.ent_coef_optimizer is not None:
        return model.log_ent_coef.exp().item()
    return model.ent_coef_tensor.item()


def policy_draws(model: SQL | SAC, observation: th.Tensor, n: int) -> tuple[th.Tensor, th.Tensor | None]:
    """``n`` pre-tanh draws of the policy at one state ``[1, n, D]``, and their log-density on the box when it is known.

    SQL's sampler has no density (``None``); SAC's actor is a squashed Gaussian, its log-density from
    SB3's own distribution (``SquashedDiagGaussianDistribution.log_prob``), ``[1, n]``.
    """
    if isinstance(model, SQL):
        return model.actor.pre_tanh_particles(observation, n), None
    mean, log_std, _ = model.actor.get_action_dist_params(observation)  # [1, D] each
    distribution = model.actor.action_dist.proba_distribution(mean.expand(n, -1), log_std.expand(n, -1))
    actions = distribution.sample()  # [n, D], squashed
    pre_tanh = distribution.gaussian_actions
    return pre_tanh.unsqueeze(0), distribution.log_prob(actions, pre_tanh).unsqueeze(0)


def importance_draws(
    model: SQL | SAC, observation: th.Tensor, alpha: float, fit: SquashedGaussianProposal, n_proposal: int
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """``M`` draws of the defensive mixture of the uniform and ``fit``.

    :return: the actions ``[1, M, D]``, their ``Q`` and their log importance weights ``[1, M]``.
    """
    action_dim = fit.pre_tanh_distribution.event_shape[0]
    n_uniform = n_uniform_draws(n_proposal, UNIFORM_SHARE)
    uniform = 2.0 * th.rand(1, n_uniform, action_dim, device=observation.device) - 1.0
    drawn = th.cat([uniform, th.tanh(fit.sample_pre_tanh(n_proposal - n_uniform))], dim=1)  # [1, M, D]
    log_r = defensive_mixture_log_density(fit.log_density(drawn), action_dim, n_uniform / n_proposal)
    q_drawn = q_values(model, observation, drawn)  # [1, M]
    return drawn, q_drawn, q_drawn / alpha - log_r


def resampled_kl_bound(model: SQL, observation: th.Tensor, log_z: float, n_candidates: int) -> float:
    """Upper bound (nats) on ``KL(q_M || p)`` of the resampling policy with ``M = n_candidates`` at one state.

    ``log Z - mean_r log mean_m w_m`` over :data:`RESAMPLED_REPEATS` proposals (each on its own
    sampler particles, as at every action) and ``M`` candidates each, ``w`` the importance weights of
    ``SVGDPolicy.resampling_candidates``; see the module docstring.
    """
    observations = observation.expand(RESAMPLED_REPEATS, -1)  # [R, obs_dim]
    _, log_w = model.policy.resampling_candidates(observations, n_candidates)  # [R, M]
    return log_z - (th.logsumexp(log_w, dim=-1) - math.log(n_candidates)).mean().item()


def fidelity_at_state(
    model: SQL | SAC, observation: th.Tensor, n_proposal: int, n_sampler: int, acting_candidates: tuple[int, ...] = ()
) -> dict:
    """The sampler against ``exp(Q / alpha)`` at one state (``observation`` of batch 1); see the module docstring.

    With ``acting_candidates``, also :func:`resampled_kl_bound` for each ``M`` (keys ``kl_resampled_<M>``).
    """
    alpha = temperature(model)
    action_dim = model.action_space.shape[0]
    with th.no_grad():
        fit = SquashedGaussianProposal(policy_draws(model, observation, PROPOSAL_FIT)[0])
        for _ in range(REFITS):
            drawn, q_drawn, log_w = importance_draws(model, observation, alpha, fit, n_proposal)
            weights = th.softmax(log_w, dim=-1).squeeze(0)  # [M]
            pre_tanh_drawn = th.atanh(drawn.squeeze(0).clamp(-1 + ACTION_CLAMP, 1 - ACTION_CLAMP))  # [M, D]
            mean = weights @ pre_tanh_drawn
            centred = pre_tanh_drawn - mean
            covariance = (weights.unsqueeze(-1) * centred).T @ centred
            covariance = WIDEN * 0.5 * (covariance + covariance.T) + 1e-4 * th.eye(action_dim, device=observation.device)
            fit = RefittedProposal(mean.unsqueeze(0), covariance.unsqueeze(0))
        drawn, q_drawn, log_w = importance_draws(model, observation, alpha, fit, n_proposal)
        log_z = (th.logsumexp(log_w, dim=-1) - math.log(n_proposal)).item()
        weights = th.softmax(log_w, dim=-1)  # self-normalised, [1, M]
        ess = (1.0 / (weights**2).sum()).item()
        q_p = (weights * q_drawn).sum().item()  # E_p[Q], reward units
        edge_p = (weights.unsqueeze(-1) * (drawn.abs() > 1 - EDGE).float()).sum(dim=1).mean().item()

        pre_tanh, log_density = policy_draws(model, observation, n_sampler)  # [1, N, D], [1, N] or None
        actions = th.tanh(pre_tanh)
        q_q = q_values(model, observation, actions).mean().item()
        if log_density is None:
            entropy_q = kozachenko_leonenko_entropy(actions).item()
        else:
            entropy_q = -log_density.mean().item()
        # The estimator on as many draws of a density of known entropy (the last refitted proposal).
        check_draws = fit.sample_pre_tanh(n_sampler)
        estimated = kozachenko_leonenko_entropy(th.tanh(check_draws)).item()
        estimator_error = estimated - squashed_gaussian_entropy(fit, check_draws).item()
        resampled = {f"kl_resampled_{m}": resampled_kl_bound(model, observation, log_z, m) for m in acting_candidates}
    entropy_p = log_z - q_p / alpha
    return {
        **resampled,
        "kl": -entropy_q - q_q / alpha + log_z,
        "log_z": log_z,
        "entropy_q": entropy_q,
        "entropy_p": entropy_p,
        "q_q": q_q,
        "q_p": q_p,
        "edge_q": (actions.abs() > 1 - EDGE).float().mean().item(),
        "edge_p": edge_p,
        "ess": ess,
        "estimator_error": estimator_error,
    }


def fidelity_report(
    model: SQL | SAC, env_id: str, states: np.ndarray, n_proposal: int, n_sampler: int, acting_candidates: tuple[int, ...] = ()
) -> None:
    """Print the per-state means (and medians) of :func:`fidelity_at_state` over ``states``."""
    observations, _ = model.policy.obs_to_tensor(states)
    rows = [
        fidelity_at_state(model, observations[i : i + 1], n_proposal, n_sampler, acting_candidates) for i in range(len(states))
    ]
    table = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    print(
        f"{type(model).__name__} on {env_id}, ent_coef {temperature(model):.4f}, D = {model.action_space.shape[0]}, "
        f"{len(states)} states, "
        f"M = {n_proposal} proposal draws, N = {n_sampler} sampler draws per state (mean / median over states):"
    )
    labels = {
        "kl": "KL(q || p), nats",
        "entropy_q": "sampler entropy H(q), nats",
        "entropy_p": "exact entropy H(p), nats",
        "q_q": "E_q[Q], reward units",
        "q_p": "E_p[Q], reward units",
        "edge_q": f"share of coordinates within {EDGE} of the edge, q",
        "edge_p": f"share of coordinates within {EDGE} of the edge, p",
        "log_z": "log Z(s)",
        "ess": "effective sample size of the M draws",
        "estimator_error": "entropy estimator's error on the fitted Gaussian, nats",
        **{f"kl_resampled_{m}": f"KL bound of the resampling policy, M = {m}, nats" for m in acting_candidates},
    }
    for key, label in labels.items():
        print(f"  {label}: {table[key].mean():.3f} / {np.median(table[key]):.3f}")


def retrain_sampler(model: SQL, observations: th.Tensor, steps: int) -> None:
    """``steps`` sampler steps (``SQL.sampler_loss``, critic frozen) on minibatches drawn from ``observations``."""
    alpha = model.current_ent_coef()
    for _ in range(steps):
        batch = observations[th.randint(0, len(observations), (model.batch_size,))]
        loss, _, _ = model.sampler_loss(batch, alpha)
        model.actor.optimizer.zero_grad()
        loss.backward()
        model.actor.optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a saved SQL model (.zip), or SAC's with --algo SAC")
    parser.add_argument("env_id", help="the environment it was trained on")
    parser.add_argument("--fidelity", action="store_true", help="the sampler against exp(Q / alpha), not the entropy alone")
    parser.add_argument("--n-states", type=int, default=50, help="with --fidelity: states evenly spaced among the 200 visited")
    parser.add_argument("--proposal-draws", type=int, default=65536, help="with --fidelity: M")
    parser.add_argument("--sampler-draws", type=int, default=4096, help="with --fidelity: N")
    parser.add_argument("--retrain", type=int, default=0, help="with --fidelity: sampler steps on a frozen critic, then again")
    parser.add_argument("--retrain-on", choices=("measured", "other"), default="other")
    parser.add_argument("--fresh-sampler", help="with --retrain: hidden layers of a fresh sampler, e.g. 256,256")
    parser.add_argument(
        "--acting-candidates", type=int, nargs="*", default=[], help="with --fidelity: M of the resampling policy's bound"
    )
    parser.add_argument("--algo", choices=("SQL", "SAC"), default="SQL", help="the saved model's algorithm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(1)
    th.manual_seed(args.seed)
    model = {"SQL": SQL, "SAC": SAC}[args.algo].load(args.model, device="cpu")
    if args.algo == "SAC" and (not args.fidelity or args.retrain or args.acting_candidates):
        parser.error("--algo SAC measures --fidelity only, without --retrain and --acting-candidates")
    states = visited_states(model, args.env_id)
    if not args.fidelity:
        entropy_report(model, args.env_id, states)
        return
    chosen = np.linspace(0, len(states) - 1, args.n_states).round().astype(int)
    fidelity_report(model, args.env_id, states[chosen], args.proposal_draws, args.sampler_draws, tuple(args.acting_candidates))
    if args.retrain:
        if args.fresh_sampler:
            model.policy.sampler_kwargs["net_arch"] = [int(width) for width in args.fresh_sampler.split(",")]
            model.policy.actor = model.actor = model.policy.make_sampler()
            model.actor.optimizer = th.optim.Adam(model.actor.parameters(), lr=1e-3)
            print(f"a fresh sampler with hidden layers {model.policy.sampler_kwargs['net_arch']}:")
            fidelity_report(model, args.env_id, states[chosen], args.proposal_draws, args.sampler_draws)
        if args.retrain_on == "measured":
            training = states[chosen]
        else:
            training = visited_states(model, args.env_id, steps=10000, every=5, seed=7)
        observations, _ = model.policy.obs_to_tensor(training)
        done = 0
        for target in sorted({min(250, args.retrain), min(1000, args.retrain), args.retrain}):
            retrain_sampler(model, observations, target - done)
            done = target
            print(f"after {done} sampler steps on {len(training)} {args.retrain_on} states, critic frozen:")
            fidelity_report(model, args.env_id, states[chosen], args.proposal_draws, args.sampler_draws)


if __name__ == "__main__":
    main()

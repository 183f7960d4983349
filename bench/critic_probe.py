"""Does a saved agent's critic agree with the returns its policy collects?

Loads a saved SQL or SAC model (e.g. a ``bench/curves.py`` cell's ``.zip``), plays ``--episodes``
episodes of its stochastic policy and of its deterministic one, and prints per episode:

- the length, whether the episode terminated, the mean squared action (actions in ``[-1, 1]^D``),
  and the sums of the reward terms the environment reports in ``info`` (``reward_*``);
- ``Q``: the mean over the episode's steps of the critic's value of the action taken,
  ``min_i Q_i(s_t, a_t)`` (the minimum over the model's critics, as its targets use);
- ``G``: the mean of the discounted return actually collected from those steps,
  ``G_t = sum_k gamma^k r_{t+k}`` to the episode's end, over the steps ``t`` where ``G_t`` is the whole
  return: every step of a terminated episode, and the steps at least ``5 / (1 - gamma)`` from the end
  of a truncated one (the rest of the return weighs under ``exp(-5)``);
- the gap ``Q - G`` in reward units. The soft Q-function of SQL (Haarnoja et al., ICML 2017, Eq. 2
  and 3) also counts the future entropy bonuses, at most ``alpha * D * log(2) / (1 - gamma)`` (no
  density on ``[-1, 1]^D`` has an entropy above ``D log 2`` nats), printed beside it. A gap far
  above that bound is an overestimating critic.

Then, at the first 300 states of a deterministic episode, the critic's value of the deterministic
action scaled by ``0, 0.5, 1``: how the critic ranks small against large actions.

    python bench/critic_probe.py bench/results/curves_17/Ant-v5_SQL_seed0.zip Ant-v5
    python bench/critic_probe.py bench/results/curves_17/Ant-v5_SAC_seed0.zip Ant-v5 --algo SAC
"""

import argparse
import math

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_sql import SQL

from common import ALGOS

#: Steps of a truncated episode's end whose discounted return is cut, in units of 1 / (1 - gamma).
HORIZONS_CUT = 5.0
#: Action scales of the critic's ranking probe.
SCALES = (0.0, 0.5, 1.0)


def critic_values(model: BaseAlgorithm, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``min_i Q_i(s, a)`` of the model's critics, shape ``[n]``, for ``n`` observations and actions.

    ``actions`` are the policy's, in ``[-1, 1]^D`` (``[n, D]``); the critic takes them as they are.
    """
    obs_tensor, _ = model.policy.obs_to_tensor(observations)
    with th.no_grad():
        q_values = th.stack(model.critic(obs_tensor, th.as_tensor(actions, dtype=th.float32)))  # [n_critics, n, 1]
    return q_values.min(dim=0).values.squeeze(-1).numpy()


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = sum_k gamma^k r_{t+k}`` to the end of ``rewards`` (shape ``[T]``), shape ``[T]``."""
    returns = np.zeros(len(rewards))
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def play(model: BaseAlgorithm, env: gym.Env, seed: int, deterministic: bool) -> dict:
    """One episode: observations ``[T, obs]``, actions ``[T, D]`` (policy scale), rewards ``[T]``, info sums."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, terms = [], [], [], {}
    terminated = truncated = False
    while not (terminated or truncated):
        action, _ = model.predict(obs, deterministic=deterministic)
        observations.append(obs)
        actions.append(model.policy.scale_action(action))
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        for key, value in info.items():
            if key.startswith("reward"):
                terms[key] = terms.get(key, 0.0) + float(value)
    return {
        "observations": np.array(observations),
        "actions": np.array(actions, dtype=np.float32),
        "rewards": np.array(rewards),
        "terminated": terminated,
        "terms": terms,
    }


def sac_temperature(model: BaseAlgorithm) -> float:
    """SAC's temperature: the learnt one (``ent_coef="auto"``) or its fixed ``ent_coef``."""
    if model.ent_coef_optimizer is not None:
        return float(th.exp(model.log_ent_coef.detach()).item())
    return float(model.ent_coef_tensor.item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a saved model (.zip)")
    parser.add_argument("env", help="its Gymnasium environment id")
    parser.add_argument("--algo", choices=sorted(ALGOS), default="SQL")
    parser.add_argument("--episodes", type=int, default=3, help="episodes per mode")
    parser.add_argument("--seed", type=int, default=100, help="reset seed of the first episode")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1, got {args.episodes}")
    th.set_num_threads(1)
    model = ALGOS[args.algo].load(args.model, device="cpu")
    env = gym.make(args.env)
    gamma = float(model.gamma)
    alpha = model.current_ent_coef() if isinstance(model, SQL) else sac_temperature(model)
    n_dims = int(np.prod(env.action_space.shape))
    bound = alpha * n_dims * math.log(2.0) / (1.0 - gamma)
    print(f"{args.model}: gamma {gamma}, alpha {alpha:.5g}, future entropy bonus at most {bound:.2f}")
    cut = int(HORIZONS_CUT / (1.0 - gamma))
    for deterministic in (False, True):
        for episode in range(args.episodes):
            run = play(model, env, args.seed + episode, deterministic)
            if deterministic and episode == 0:
                probed = run  # the ranking probe below uses this episode's states
            length = len(run["rewards"])
            kept = length if run["terminated"] else max(length - cut, 0)
            q_values = critic_values(model, run["observations"], run["actions"])
            returns = discounted_returns(run["rewards"], gamma)
            gap = f"Q {q_values[:kept].mean():.1f}, G {returns[:kept].mean():.1f}" if kept else "too short"
            terms = " ".join(f"{key} {value:.1f}" for key, value in run["terms"].items())
            print(
                f"{'deterministic' if deterministic else 'stochastic'} episode {episode}: length {length}"
                f"{' (terminated)' if run['terminated'] else ''}, return {run['rewards'].sum():.1f}, "
                f"mean a^2 {np.mean(run['actions'] ** 2):.3f}; {terms}; {gap}"
            )
    states, actions = probed["observations"][:300], probed["actions"][:300]
    ranking = ", ".join(f"Q(s, {scale} a) {critic_values(model, states, scale * actions).mean():.1f}" for scale in SCALES)
    print(f"critic at {len(states)} states of a deterministic episode, its action scaled: {ranking}")


if __name__ == "__main__":
    main()

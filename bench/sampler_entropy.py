"""The sampler's entropy at the states it visits: evidence for the target entropy of ``ent_coef="auto"``.

Loads a saved SQL model (e.g. a ``bench/curves.py`` cell's ``.zip``), plays 2000 steps of its
stochastic policy, keeps every tenth state and, at each, draws K sampler actions and takes their
Kozachenko-Leonenko entropy estimate (``sb3_sql.entropy``, the estimate the automatic temperature
uses; nats, actions scaled to ``[-1, 1]^D``), for K = 16 and 32. A model trained at a tuned fixed
temperature tells which target entropy that temperature corresponds to.

    python bench/sampler_entropy.py bench/results/curves_v2/Hopper-v5_SQL_seed0.zip Hopper-v5
"""

import argparse

import gymnasium as gym
import numpy as np
import torch as th

from sb3_sql import SQL
from sb3_sql.entropy import kozachenko_leonenko_entropy


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a saved SQL model (.zip)")
    parser.add_argument("env_id", help="the environment it was trained on")
    args = parser.parse_args()
    th.set_num_threads(1)
    model = SQL.load(args.model, device="cpu")
    states = visited_states(model, args.env_id)
    with th.no_grad():
        observations, _ = model.policy.obs_to_tensor(states)
        for n_particles in (16, 32):
            actions = model.actor.pre_tanh_particles(observations, n_particles).tanh()  # [N, K, D]
            entropy = kozachenko_leonenko_entropy(actions)  # [N], nats
            print(
                f"{args.env_id}, ent_coef {model.current_ent_coef():.4f}, D = {actions.shape[-1]}, K = {n_particles}: "
                f"entropy estimate per state mean {entropy.mean():.2f} nats, median {entropy.median():.2f}, "
                f"over {len(states)} states"
            )


if __name__ == "__main__":
    main()

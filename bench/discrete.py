"""SQL vs SB3 DQN on discrete-action tasks: evaluation return and env-steps per second on the same seeds.

DQN uses rl_zoo3's tuned hyperparameters, SQL the shipped ones (hyperparams/sql.yml: DQN's
settings without the epsilon-greedy schedule, plus the temperature). Both train for DQN's zoo
budget unless ``--timesteps`` is given; runs alternate SQL, DQN per seed in one process on one
torch thread. LunarLander-v3 needs ``pip install "gymnasium[box2d]"`` (the ``box2d`` extra).

    python bench/discrete.py [--envs CartPole-v1 LunarLander-v3] [--seeds 0 1 2] [--timesteps N]
                             [--algos SQL DQN] [--sql-hyperparams hyperparams/sql.yml]
"""

import argparse
import statistics
from pathlib import Path

import gymnasium as gym
import torch as th
import yaml
from stable_baselines3 import DQN
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_sql import SQL
from sb3_sql.zoo import default_hyperparams_path, load_hyperparams

from common import TrainingThroughput, rl_zoo_kwargs


def zoo_timesteps(env_id: str) -> int:
    """DQN's training budget for ``env_id`` in rl_zoo3."""
    import rl_zoo3

    with open(Path(rl_zoo3.__file__).parent / "hyperparams" / "dqn.yml") as file:
        return int(float(yaml.safe_load(file)[env_id]["n_timesteps"]))


def run(algo, env_id: str, kwargs: dict, seed: int, timesteps: int, n_eval_episodes: int) -> dict:
    model = algo("MlpPolicy", env_id, seed=seed, **kwargs)
    timer = TrainingThroughput()
    model.learn(timesteps, callback=timer)
    eval_env = Monitor(gym.make(env_id))
    eval_env.reset(seed=10_000 + seed)
    deterministic, _ = evaluate_policy(model, eval_env, n_eval_episodes=n_eval_episodes, deterministic=True)
    stochastic, _ = evaluate_policy(model, eval_env, n_eval_episodes=n_eval_episodes, deterministic=False)
    return {"deterministic": deterministic, "stochastic": stochastic, "sps": timer.steps_per_second}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "LunarLander-v3"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=None, help="default: DQN's rl_zoo3 budget per task")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--algos", nargs="+", default=["SQL", "DQN"], choices=["SQL", "DQN"], help="run a subset")
    parser.add_argument(
        "--sql-hyperparams", type=Path, default=default_hyperparams_path(), help="rl_zoo3 yaml with SQL's entries"
    )
    args = parser.parse_args()
    th.set_num_threads(1)

    for env_id in args.envs:
        timesteps = args.timesteps or zoo_timesteps(env_id)
        algos = {"SQL": (SQL, load_hyperparams(env_id, args.sql_hyperparams)), "DQN": (DQN, rl_zoo_kwargs("dqn", env_id))}
        algos = {name: algos[name] for name in args.algos}
        print(f"\n{env_id}, {timesteps} steps, mean return over {args.eval_episodes} evaluation episodes")
        for name, (_, kwargs) in algos.items():
            print(f"{name} hyperparameters: {kwargs}")
        print(f"{'seed':>4} {'algo':>4} {'deterministic':>14} {'stochastic':>11} {'train steps/s':>14}")
        results: dict[str, list[dict]] = {name: [] for name in algos}
        for seed in args.seeds:
            for name, (algo, kwargs) in algos.items():
                r = run(algo, env_id, kwargs, seed, timesteps, args.eval_episodes)
                results[name].append(r)
                row = f"{r['deterministic']:>14.1f} {r['stochastic']:>11.1f} {r['sps']:>14.1f}"
                print(f"{seed:>4} {name:>4} {row}", flush=True)
        means = {name: {key: statistics.mean(r[key] for r in runs) for key in runs[0]} for name, runs in results.items()}
        for name, mean in means.items():
            print(f"mean {name:>4} {mean['deterministic']:>14.1f} {mean['stochastic']:>11.1f} {mean['sps']:>14.1f}")
        if len(means) == 2:
            for mode in ("deterministic", "stochastic"):
                # Returns can be negative (LunarLander-v3), so the gap is measured against |DQN|.
                gap = means["SQL"][mode] - means["DQN"][mode]
                print(f"SQL - DQN, {mode}: {gap:+.1f} ({gap / max(abs(means['DQN'][mode]), 1e-9):+.1%} of |DQN|)")
    print("(DQN's stochastic evaluation is epsilon-greedy with its final epsilon; SQL's samples softmax(Q / ent_coef))")


if __name__ == "__main__":
    main()

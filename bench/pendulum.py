"""SQL vs SB3 SAC on Pendulum-v1: evaluation return and env-steps per second on the same seeds.

SQL uses the shipped hyperparameters (hyperparams/sql.yml), SAC rl_zoo3's tuned ones. Runs
alternate SQL, SAC per seed in one process on one torch thread.

    python bench/pendulum.py [--seeds 0 1 2] [--timesteps 20000]
"""

import argparse
import statistics
import sys
from pathlib import Path

import gymnasium as gym
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HYPERPARAMS, TrainingThroughput, rl_zoo_kwargs, zoo_kwargs  # noqa: E402

from sb3_sql import SQL  # noqa: E402

ENV_ID = "Pendulum-v1"


def run(algo, kwargs: dict, seed: int, timesteps: int, n_eval_episodes: int) -> dict:
    model = algo("MlpPolicy", ENV_ID, seed=seed, **kwargs)
    timer = TrainingThroughput()
    model.learn(timesteps, callback=timer)
    eval_env = gym.make(ENV_ID)
    eval_env.reset(seed=10_000 + seed)
    stochastic, _ = evaluate_policy(model, eval_env, n_eval_episodes=n_eval_episodes, deterministic=False)
    deterministic, _ = evaluate_policy(model, eval_env, n_eval_episodes=n_eval_episodes, deterministic=True)
    return {"stochastic": stochastic, "deterministic": deterministic, "sps": timer.steps_per_second}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args()
    th.set_num_threads(1)

    algos = {"SQL": (SQL, zoo_kwargs(HYPERPARAMS, ENV_ID)), "SAC": (SAC, rl_zoo_kwargs("sac", ENV_ID))}
    for name, (_, kwargs) in algos.items():
        print(f"{name} hyperparameters: {kwargs}")
    print(f"\n{ENV_ID}, {args.timesteps} steps, mean return over {args.eval_episodes} evaluation episodes")
    print(f"{'seed':>4} {'algo':>4} {'stochastic':>11} {'deterministic':>14} {'train steps/s':>14}")
    ratios = []
    for seed in args.seeds:
        results = {}
        for name, (algo, kwargs) in algos.items():
            results[name] = run(algo, kwargs, seed, args.timesteps, args.eval_episodes)
            r = results[name]
            print(f"{seed:>4} {name:>4} {r['stochastic']:>11.1f} {r['deterministic']:>14.1f} {r['sps']:>14.1f}", flush=True)
        ratios.append(results["SQL"]["sps"] / results["SAC"]["sps"])
    print(f"\nthroughput ratio SQL/SAC (after learning starts), median of the pairs: {statistics.median(ratios):.2f}")
    print("(at Pendulum-v1 the shipped settings are both algorithms' defaults, up to SAC's learning rate)")


if __name__ == "__main__":
    main()

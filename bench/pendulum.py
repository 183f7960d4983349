"""SQL vs SB3 SAC on Pendulum-v1: evaluation return and env-steps per second on the same seeds.

Part 1 (learning): SQL with the shipped hyperparameters (hyperparams/sql.yml), SAC with rl_zoo3's
tuned ones, alternating SQL, SAC per seed. Part 2 (throughput): both at their library defaults,
alternating SQL, SAC for several repetitions; env-steps/s once learning has started (1 gradient
step per env step). One process, one torch thread.

    python bench/pendulum.py [--seeds 0 1 2] [--timesteps 20000] [--throughput-steps 3000] [--part both]
"""

import argparse
import statistics

import gymnasium as gym
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_sql import SQL
from sb3_sql.zoo import load_hyperparams

from common import TrainingThroughput, rl_zoo_kwargs

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


def throughput_at_defaults(n_repetitions: int, timesteps: int) -> None:
    """Env-steps/s of SQL() and SAC() at their defaults, alternated; learning starts after 100 steps."""
    print(f"\nThroughput at the library defaults, {timesteps} steps after learning starts, {n_repetitions} pairs")
    ratios = []
    for repetition in range(n_repetitions):
        steps_per_second = {}
        for name, algo in (("SQL", SQL), ("SAC", SAC)):
            model = algo("MlpPolicy", ENV_ID, seed=repetition, learning_starts=100)
            timer = TrainingThroughput()
            model.learn(timesteps + 100, callback=timer)
            steps_per_second[name] = timer.steps_per_second
        ratios.append(steps_per_second["SQL"] / steps_per_second["SAC"])
        print(f"  pair {repetition}: SQL {steps_per_second['SQL']:.1f}, SAC {steps_per_second['SAC']:.1f} steps/s", flush=True)
    print(f"throughput ratio SQL(defaults)/SAC(defaults), median of the pairs: {statistics.median(ratios):.2f}")


def learning(seeds: list[int], timesteps: int, n_eval_episodes: int) -> None:
    algos = {"SQL": (SQL, load_hyperparams(ENV_ID)), "SAC": (SAC, rl_zoo_kwargs("sac", ENV_ID))}
    for name, (_, kwargs) in algos.items():
        print(f"{name} hyperparameters: {kwargs}")
    print(f"\n{ENV_ID}, {timesteps} steps, mean return over {n_eval_episodes} evaluation episodes")
    print(f"{'seed':>4} {'algo':>4} {'stochastic':>11} {'deterministic':>14} {'train steps/s':>14}")
    ratios = []
    for seed in seeds:
        results = {}
        for name, (algo, kwargs) in algos.items():
            results[name] = run(algo, kwargs, seed, timesteps, n_eval_episodes)
            r = results[name]
            print(f"{seed:>4} {name:>4} {r['stochastic']:>11.1f} {r['deterministic']:>14.1f} {r['sps']:>14.1f}", flush=True)
        ratios.append(results["SQL"]["sps"] / results["SAC"]["sps"])
    print(f"throughput ratio SQL/SAC with these settings, median of the pairs: {statistics.median(ratios):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--throughput-steps", type=int, default=3000)
    parser.add_argument("--throughput-pairs", type=int, default=3)
    parser.add_argument("--part", choices=["both", "learning", "throughput"], default="both")
    args = parser.parse_args()
    th.set_num_threads(1)
    if args.part in ("both", "learning"):
        learning(args.seeds, args.timesteps, args.eval_episodes)
    if args.part in ("both", "throughput"):
        throughput_at_defaults(args.throughput_pairs, args.throughput_steps)


if __name__ == "__main__":
    main()

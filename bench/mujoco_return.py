"""SQL on a MuJoCo task with the shipped hyperparameters: evaluation return before and after training.

python bench/mujoco_return.py [--env HalfCheetah-v5] [--timesteps 30000] [--seed 0]
"""

import argparse
import time

import gymnasium as gym
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_sql import SQL
from sb3_sql.zoo import load_hyperparams

from common import TrainingThroughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--timesteps", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=5)
    args = parser.parse_args()
    th.set_num_threads(1)

    kwargs = load_hyperparams(args.env)
    print(f"SQL on {args.env}, seed {args.seed}, hyperparameters {kwargs}")
    model = SQL("MlpPolicy", args.env, seed=args.seed, **kwargs)
    eval_env = gym.make(args.env)
    eval_env.reset(seed=10_000 + args.seed)
    before, before_std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes)
    print(f"untrained: mean return {before:.1f} +/- {before_std:.1f} over {args.eval_episodes} episodes", flush=True)

    timer = TrainingThroughput()
    start = time.perf_counter()
    model.learn(args.timesteps, callback=timer)
    minutes = (time.perf_counter() - start) / 60
    after, after_std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes)
    deterministic, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    print(f"after {args.timesteps} steps ({minutes:.1f} min, {timer.steps_per_second:.1f} train steps/s):")
    print(f"  stochastic mean return {after:.1f} +/- {after_std:.1f}, deterministic {deterministic:.1f}")


if __name__ == "__main__":
    main()

"""The main job: a short SQL training run on Pendulum-v1 with SB3's progress bar.

Usage: python examples/train_pendulum.py [--timesteps 10000] [--seed 0] [--save PATH]
Prints the mean return of 10 evaluation episodes (deterministic: the best of 32 sampler draws by Q, SB3's
evaluate_policy default) before and after training.
"""

import argparse

import gymnasium as gym
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_sql import SQL
from sb3_sql.zoo import load_hyperparams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="where to save the trained model (zip)")
    args = parser.parse_args()
    th.set_num_threads(1)  # fastest for these small networks on a CPU

    # The shipped Pendulum-v1 hyperparameters (hyperparams/sql.yml): Polyak target updates as in SAC.
    model = SQL("MlpPolicy", "Pendulum-v1", seed=args.seed, **load_hyperparams("Pendulum-v1"))
    eval_env = Monitor(gym.make("Pendulum-v1"))
    eval_env.reset(seed=args.seed + 1000)
    before, _ = evaluate_policy(model, eval_env, n_eval_episodes=10)
    print(f"untrained policy: mean return {before:.1f} over 10 episodes")

    model.learn(args.timesteps, progress_bar=True)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=10)
    print(f"after {args.timesteps} steps: mean return {mean_return:.1f} +/- {std_return:.1f} over 10 episodes")
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")


if __name__ == "__main__":
    main()

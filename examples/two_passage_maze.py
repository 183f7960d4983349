"""SQL and SB3 SAC on TwoPassageMaze-v0: which passage does each find, and can it switch when blocked?

One seed of the exploration experiment (Haarnoja et al., ICML 2017, section 5.2; the seeds are
bench/exploration.py's). Trains each algorithm with the shipped hyperparameters
(hyperparams/sql.yml; SAC: its defaults with SQL's networks, learning rate, batch size and warm-up),
prints how many stochastic evaluation episodes reached the goal and which passage they went up,
then moves the door to the other side and continues training each agent for --blocked-steps
steps, printing the step at which a training episode first reaches the goal again. Writes
two_passage_maze_seed<seed>.png: the sampled paths of each agent (top: trained maze, bottom: after
the door moved), red up the left passage, blue up the right one, green when the goal was reached.
About 13 minutes for SQL and 8 for SAC on one (shared) CPU core with the default 30000 + 30000 steps.

Usage: python examples/two_passage_maze.py [--timesteps N] [--blocked-steps N] [--seed 0] [--algos SQL SAC]
"""

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from matplotlib.figure import Figure
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback

from sb3_sql import SQL
from sb3_sql.envs.two_passage_maze import draw_maze, maze_rollouts, passage_of
from sb3_sql.zoo import load_hyperparams, read_zoo_entry

ENV_ID = "TwoPassageMaze-v0"
SHARED = ("policy_kwargs", "learning_rate", "batch_size", "learning_starts", "gamma")


class FirstSuccess(BaseCallback):
    """The number of steps (of this ``learn`` call) until a training episode first reaches the goal."""

    def _on_training_start(self) -> None:
        self.start, self.step = self.num_timesteps, None

    def _on_step(self) -> bool:
        if self.step is None and any(info.get("is_success") for info in self.locals["infos"]):
            self.step = self.num_timesteps - self.start
        return True


def report(name: str, successes: np.ndarray, paths: list[np.ndarray]) -> None:
    passages = [passage_of(path) for path in paths]
    counts = ", ".join(f"{side} {passages.count(side)}" for side in ("left", "right", "both", "none"))
    print(f"  {name}: goal reached in {int(successes.sum())} of {len(successes)} episodes; passages: {counts}")


def draw(axes, open_passage: str, successes: np.ndarray, paths: list[np.ndarray], title: str) -> None:
    colors = [
        "tab:green" if success else {"left": "tab:red", "right": "tab:blue"}.get(passage_of(path), "tab:gray")
        for success, path in zip(successes, paths, strict=True)
    ]
    draw_maze(axes, open_passage, paths, colors)
    axes.set_title(title, fontsize=9)


def main() -> None:
    shipped_timesteps = int(read_zoo_entry(ENV_ID)["n_timesteps"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=shipped_timesteps)
    parser.add_argument("--blocked-steps", type=int, default=30_000, help="steps after the door moved (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algos", nargs="+", choices=["SQL", "SAC"], default=["SQL", "SAC"])
    parser.add_argument("--eval-episodes", type=int, default=30)
    parser.add_argument("--output-dir", type=Path, default=Path("."))
    args = parser.parse_args()
    th.set_num_threads(1)  # fastest for these small networks on a CPU

    sql_kwargs = load_hyperparams(ENV_ID)
    kwargs = {"SQL": (SQL, sql_kwargs), "SAC": (SAC, {key: sql_kwargs[key] for key in SHARED})}
    rows = 2 if args.blocked_steps > 0 else 1
    figure = Figure(figsize=(4 * len(args.algos), 4 * rows), layout="constrained")
    grid = figure.subplots(rows, len(args.algos), squeeze=False)
    for column, name in enumerate(args.algos):
        algo, algo_kwargs = kwargs[name]
        model = algo("MlpPolicy", gym.make(ENV_ID, open_passage="right"), seed=args.seed, **algo_kwargs)
        first = FirstSuccess()
        model.learn(args.timesteps, callback=first)
        successes, paths = maze_rollouts(model, args.eval_episodes, seed=args.seed + 1000, open_passage="right")
        print(f"{name}, door on the right, after {args.timesteps} steps (first training success at step {first.step}):")
        report("stochastic", successes, paths)
        report("deterministic", *maze_rollouts(model, args.eval_episodes, args.seed + 2000, True, "right"))
        draw(
            grid[0, column],
            "right",
            successes,
            paths,
            f"{name}, {args.timesteps} steps: {int(successes.sum())}/{len(successes)} at the goal",
        )
        if args.blocked_steps > 0:
            model.set_env(gym.make(ENV_ID, open_passage="left"))
            first = FirstSuccess()
            model.learn(args.blocked_steps, callback=first, reset_num_timesteps=False)
            successes, paths = maze_rollouts(model, args.eval_episodes, seed=args.seed + 3000, open_passage="left")
            print(
                f"{name}, door moved to the left, after {args.blocked_steps} more steps "
                f"(first success again at step {first.step}):"
            )
            report("stochastic", successes, paths)
            title = f"{name}, door moved, +{args.blocked_steps} steps: {int(successes.sum())}/{len(successes)}"
            draw(grid[1, column], "left", successes, paths, title)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    filename = args.output_dir / f"two_passage_maze_seed{args.seed}.png"
    figure.savefig(filename, dpi=100)
    print(f"wrote {filename}")


if __name__ == "__main__":
    main()

"""SQL on MultiGoal-v0, the paper's multimodal task: goal counts and the two Figure 1 pictures.

Trains SQL with the shipped hyperparameters (hyperparams/sql.yml), prints how many of the
stochastic evaluation episodes ended at each goal, and writes
- multigoal_q.png: soft Q contours and 100 sampled actions at (-2.5, 0), (0, 0) and (2.5, 2.5);
- multigoal_cost.png: the cost contours, the four goals and the evaluation paths.
About 2 to 4 minutes on one CPU core with the default 10000 steps (132 s measured on 2 shared cores).

Usage: python examples/multigoal.py [--timesteps N] [--seed 0] [--eval-episodes 100] [--output-dir .]
"""

import argparse
from pathlib import Path

import numpy as np
import torch as th

from sb3_sql import SQL
from sb3_sql.envs.multigoal import GOALS, goal_rollouts
from sb3_sql.plots import plot_cost_contours, plot_q_contours
from sb3_sql.zoo import load_hyperparams, read_zoo_entry

ENV_ID = "MultiGoal-v0"


def main() -> None:
    shipped_timesteps = int(read_zoo_entry(ENV_ID)["n_timesteps"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=shipped_timesteps)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--output-dir", type=Path, default=Path("."))
    args = parser.parse_args()
    th.set_num_threads(1)  # fastest for these small networks on a CPU

    model = SQL("MlpPolicy", ENV_ID, seed=args.seed, **load_hyperparams(ENV_ID))
    model.learn(args.timesteps, progress_bar=True)

    goal_indices, paths = goal_rollouts(model, args.eval_episodes, seed=args.seed + 1000)
    print(f"after {args.timesteps} steps, where {args.eval_episodes} stochastic episodes ended:")
    for index, goal in enumerate(GOALS):
        print(f"  goal {tuple(goal.tolist())}: {np.sum(goal_indices == index)}")
    print(f"  no goal within 30 steps: {np.sum(goal_indices == -1)}")

    args.output_dir.mkdir(parents=True, exist_ok=True)
    plot_q_contours(model, filename=args.output_dir / "multigoal_q.png")
    plot_cost_contours(paths, filename=args.output_dir / "multigoal_cost.png")
    print(f"wrote {args.output_dir / 'multigoal_q.png'} and {args.output_dir / 'multigoal_cost.png'}")


if __name__ == "__main__":
    main()

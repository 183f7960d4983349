"""SQL vs SB3 SAC on MultiGoal-v0: does the policy reach all four goals?

Both train for the same number of steps on the same seeds, with the same networks (2 x 128),
learning rate, batch size and warm-up; each with the temperature it does best with
(override with --sql-ent-coef / --sac-ent-coef). SQL otherwise uses the shipped
hyperparameters (hyperparams/sql.yml), SAC its own defaults (Polyak targets, twin critics).
Per seed, 100 stochastic episodes are played and the share of them ending at each goal
(terminated within distance 1 of it) is recorded. Runs go SQL, SAC per seed, in one process
on one torch thread.

SAC's temperature, swept on seed 0 at 10000 steps (goal shares (5,0) (-5,0) (0,5) (0,-5) none):
"auto" 0/0/1.00/0/0, 1.0 0/0/1.00/0/0, 10.0 0.10/0/0.90/0/0, 30.0 0.04/0.01/0.01/0/0.94;
10.0 is the only one reaching two goals. SQL's, same protocol: 3.0 0.34/0/0.63/0.03/0,
10.0 (the reference, reward_scale 0.1) 0.33/0.19/0.20/0.25/0.03, 30.0 0.06/0.06/0.02/0.06/0.80.

    python bench/multigoal.py [--seeds 0 1 2 3 4] [--timesteps 10000] [--output-dir bench_results]

Writes multigoal_goal_shares.csv and multigoal_goal_shares.png in --output-dir.
"""

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch as th
from matplotlib.figure import Figure
from stable_baselines3 import SAC

from sb3_sql import SQL
from sb3_sql.envs.multigoal import GOALS, goal_rollouts
from sb3_sql.zoo import load_hyperparams

ENV_ID = "MultiGoal-v0"
COLUMNS = [f"goal_{tuple(goal.astype(int).tolist())}" for goal in GOALS] + ["no_goal"]
# The share of episodes below which a goal does not count as reached "reliably".
MIN_SHARE = 0.10


def algorithm_kwargs(name: str, ent_coef: str) -> dict:
    """Keyword arguments of SQL (shipped entry) or SAC (the same shared settings, SAC's own targets)."""
    sql_kwargs = load_hyperparams(ENV_ID)
    value: str | float = ent_coef if ent_coef.startswith("auto") else float(ent_coef)  # "auto" learns it
    if name == "SQL":
        return {**sql_kwargs, "ent_coef": value}
    shared = ("policy_kwargs", "learning_rate", "batch_size", "learning_starts", "gamma")
    return {**{key: sql_kwargs[key] for key in shared}, "ent_coef": value}


def goal_shares(algo, kwargs: dict, seed: int, timesteps: int, n_episodes: int) -> tuple[np.ndarray, float]:
    """Train one model; return the shares of episodes ending at each goal and at none ``[5]``, and the training seconds."""
    model = algo("MlpPolicy", ENV_ID, seed=seed, **kwargs)
    start = time.perf_counter()
    model.learn(timesteps)
    seconds = time.perf_counter() - start
    goal_indices, _ = goal_rollouts(model, n_episodes, seed=10_000 + seed)
    counts = np.array([np.sum(goal_indices == index) for index in range(len(GOALS))] + [np.sum(goal_indices == -1)])
    return counts / n_episodes, seconds


def plot_shares(rows: list[dict], filename: Path) -> None:
    """Grouped bars: per algorithm a panel, per seed the share of episodes at each goal and at none."""
    algos = list(dict.fromkeys(row["algo"] for row in rows))
    figure = Figure(figsize=(6 * len(algos), 4), dpi=100, layout="constrained")
    width = 0.8 / len(COLUMNS)
    for panel, name in enumerate(algos):
        axes = figure.add_subplot(1, len(algos), panel + 1)
        algo_rows = [row for row in rows if row["algo"] == name]
        positions = np.arange(len(algo_rows))
        for index, column in enumerate(COLUMNS):
            axes.bar(positions + (index - 2) * width, [row[column] for row in algo_rows], width, label=column)
        axes.axhline(MIN_SHARE, color="gray", linestyle="--", linewidth=0.8)
        axes.set_xticks(positions, [f"seed {row['seed']}" for row in algo_rows])
        axes.set_ylim(0, 1)
        axes.set_ylabel("share of evaluation episodes")
        axes.set_title(f"{name} (ent_coef={algo_rows[0]['ent_coef']}, {algo_rows[0]['timesteps']} steps)")
    figure.axes[0].legend(fontsize=7)
    figure.savefig(filename)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--timesteps", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--sql-ent-coef", default="10.0")
    parser.add_argument("--sac-ent-coef", default="10.0")
    parser.add_argument("--algos", nargs="+", choices=["SQL", "SAC"], default=["SQL", "SAC"])
    parser.add_argument("--output-dir", type=Path, default=Path("bench_results"))
    parser.add_argument(
        "--sql-kwargs",
        type=json.loads,
        default={},
        help='SQL keyword arguments over the shipped entry, as JSON, e.g. \'{"kernel_bandwidth": "reference"}\'',
    )
    args = parser.parse_args()
    th.set_num_threads(1)

    algos = {"SQL": (SQL, args.sql_ent_coef), "SAC": (SAC, args.sac_ent_coef)}
    algos = {name: (algo, algorithm_kwargs(name, ent_coef)) for name, (algo, ent_coef) in algos.items() if name in args.algos}
    if "SQL" in algos:
        algos["SQL"][1].update(args.sql_kwargs)
    for name, (_, kwargs) in algos.items():
        print(f"{name} hyperparameters: {kwargs}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = args.output_dir / "multigoal_goal_shares.csv", args.output_dir / "multigoal_goal_shares.png"

    print(f"\n{ENV_ID}, {args.timesteps} steps, share of {args.eval_episodes} stochastic episodes ending at each goal")
    print(f"{'seed':>4} {'algo':>4} " + " ".join(f"{column:>10}" for column in COLUMNS) + f" {'train s':>8}")
    rows = []
    for seed in args.seeds:
        for name, (algo, kwargs) in algos.items():
            shares, seconds = goal_shares(algo, kwargs, seed, args.timesteps, args.eval_episodes)
            row = {"algo": name, "seed": seed, "ent_coef": kwargs["ent_coef"], "timesteps": args.timesteps}
            rows.append({**row, **dict(zip(COLUMNS, shares.tolist(), strict=True)), "train_seconds": round(seconds, 1)})
            print(f"{seed:>4} {name:>4} " + " ".join(f"{share:>10.2f}" for share in shares) + f" {seconds:>8.0f}", flush=True)
            # Written after every run, so that an interrupted benchmark keeps what it measured.
            with open(csv_path, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)

    print(f"\nseeds with all four goals at >= {MIN_SHARE:.0%} of the episodes:")
    for name in algos:
        goal_matrix = np.array([[row[column] for column in COLUMNS[:-1]] for row in rows if row["algo"] == name])
        print(f"  {name}: {np.sum(goal_matrix.min(axis=1) >= MIN_SHARE)} of {len(goal_matrix)}")
    plot_shares(rows, png_path)
    print(f"wrote {csv_path} and {png_path}")


if __name__ == "__main__":
    main()

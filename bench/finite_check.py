"""Cost of the finite-loss guard (``check_finite_update`` before each optimizer step) on Pendulum-v1.

Trains SQL with the shipped hyperparameters with the guard and with it replaced by a no-op,
alternating the two on the same seeds, in one process on one torch thread, and prints the
env-steps per second once learning has started.

    python bench/finite_check.py [--seeds 0 1] [--timesteps 3000]
"""

import argparse
import statistics

import torch as th

import sb3_sql.sql
from sb3_sql import SQL
from sb3_sql.zoo import load_hyperparams

from common import TrainingThroughput

ENV_ID = "Pendulum-v1"


def steps_per_second(seed: int, timesteps: int, guarded: bool) -> float:
    original = sb3_sql.sql.check_finite_update
    if not guarded:
        sb3_sql.sql.check_finite_update = lambda *args, **kwargs: None
    try:
        model = SQL("MlpPolicy", ENV_ID, seed=seed, **load_hyperparams(ENV_ID))
        timer = TrainingThroughput()
        model.learn(timesteps, callback=timer)
    finally:
        sb3_sql.sql.check_finite_update = original
    return timer.steps_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--timesteps", type=int, default=3000)
    args = parser.parse_args()
    th.set_num_threads(1)

    print(f"{ENV_ID}, {args.timesteps} steps, train steps/s after learning starts")
    print(f"{'seed':>4} {'guarded':>8} {'unguarded':>10}")
    ratios = []
    for seed in args.seeds:
        guarded, unguarded = (steps_per_second(seed, args.timesteps, flag) for flag in (True, False))
        ratios.append(guarded / unguarded)
        print(f"{seed:>4} {guarded:>8.1f} {unguarded:>10.1f}", flush=True)
    print(f"\nthroughput ratio guarded/unguarded, median over seeds: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()

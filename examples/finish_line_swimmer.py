"""SQL and SB3 SAC on FinishLineSwimmer-v0: which way does each swim, and does it reach the line?

One seed of the finish-line experiment (Haarnoja et al., ICML 2017, section 5.2, Figure 3; the
seeds are bench/exploration.py's). The swimmer is paid the speed at which its centre of mass
moves away from its start along x, in either direction, and 1000 with the end of the episode when
it reaches the finish line at x = +2. Trains each algorithm with the shipped hyperparameters
(SQL: hyperparams/sql.yml; SAC: rl_zoo3's Swimmer-v4 entry) and records every training
episode's return and the final x of its centre of mass. Prints the first training step at which
the line was reached, and writes finish_line_swimmer_seed<seed>.png: the learning curves
(episode return and final x vs env steps, the line dashed). About 15 minutes for SQL and 25 for
SAC on one (shared) CPU core with the default 100000 steps.

Usage: python examples/finish_line_swimmer.py [--timesteps N] [--seed 0] [--algos SQL SAC] [--output-dir .]
"""

import argparse
from pathlib import Path

import gymnasium as gym
import torch as th
from matplotlib.figure import Figure
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback

from sb3_sql import SQL
from sb3_sql.envs.finish_line_swimmer import FINISH_DISTANCE
from sb3_sql.zoo import load_hyperparams, read_zoo_entry

ENV_ID = "FinishLineSwimmer-v0"


class EpisodeLog(BaseCallback):
    """Per finished training episode: the env step, its return and the root's final x."""

    def _on_training_start(self) -> None:
        self.episodes: list[tuple[int, float, float, bool]] = []
        self.total = 0.0

    def _on_step(self) -> bool:
        self.total += float(self.locals["rewards"][0])
        if self.locals["dones"][0]:
            info = self.locals["infos"][0]
            self.episodes.append((self.num_timesteps, self.total, float(info["com_x_position"]), bool(info["is_success"])))
            self.total = 0.0
        return True


def main() -> None:
    shipped_timesteps = int(read_zoo_entry(ENV_ID)["n_timesteps"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=shipped_timesteps)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algos", nargs="+", choices=["SQL", "SAC"], default=["SQL", "SAC"])
    parser.add_argument("--output-dir", type=Path, default=Path("."))
    args = parser.parse_args()
    th.set_num_threads(1)  # fastest for these small networks on a CPU

    import rl_zoo3

    sac_kwargs = load_hyperparams("Swimmer-v4", Path(rl_zoo3.__file__).parent / "hyperparams" / "sac.yml")  # rl_zoo3's SAC
    algos = {"SQL": (SQL, load_hyperparams(ENV_ID)), "SAC": (SAC, sac_kwargs)}
    figure = Figure(figsize=(10, 4), layout="constrained")
    return_axes, x_axes = figure.subplots(1, 2)
    for name in args.algos:
        algo, kwargs = algos[name]
        model = algo("MlpPolicy", gym.make(ENV_ID), seed=args.seed, **kwargs)
        log = EpisodeLog()
        model.learn(args.timesteps, callback=log)
        crossings = [steps for steps, _, _, success in log.episodes if success]
        print(f"{name}: {len(log.episodes)} training episodes in {args.timesteps} steps")
        print(f"  finish line first reached at step: {crossings[0] if crossings else 'never'} ({len(crossings)} crossings)")
        if log.episodes:
            print(f"  last episode: return {log.episodes[-1][1]:.1f}, final x {log.episodes[-1][2]:.2f}")
        steps = [episode[0] for episode in log.episodes]
        return_axes.plot(steps, [episode[1] for episode in log.episodes], "o-", markersize=3, label=name)
        x_axes.plot(steps, [episode[2] for episode in log.episodes], "o-", markersize=3, label=name)
    x_axes.axhline(FINISH_DISTANCE, color="gray", linestyle="--", label="finish line")
    x_axes.axhline(0.0, color="gray", linewidth=0.5)
    return_axes.set(xlabel="env steps", ylabel="training episode return", title=f"{ENV_ID}, seed {args.seed}")
    x_axes.set(xlabel="env steps", ylabel="final x of the centre of mass (m)")
    return_axes.legend()
    x_axes.legend()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    filename = args.output_dir / f"finish_line_swimmer_seed{args.seed}.png"
    figure.savefig(filename, dpi=100)
    print(f"wrote {filename}")


if __name__ == "__main__":
    main()

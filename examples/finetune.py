"""Fine-tune a maximum-entropy SQL policy on a specific MultiGoal task (docs/method.md, "Composition and fine-tuning").

Pretrains SQL on MultiGoal-v0 (all four goals pay), then learns the task that pays only for
the goal (0, 5) (``goal_weights=(0, 0, 1, 0)``) twice for --timesteps steps: fine-tuning the
pretrained model (``SQL.load(path, env=task, ent_coef=schedule)``) and from scratch, both with
the same temperature schedule, log-linear from --ent-coef to --ent-coef-end over the first
--anneal-fraction of the steps (Haarnoja et al., ICML 2017, section 6.2). Both are evaluated
every --eval-freq steps on --eval-episodes stochastic episodes (SB3's EvalCallback); the script
prints both curves, the from-scratch agent's final return and the first step at which the
fine-tuned agent reaches it, and writes finetune_curve_seed<seed>.png.
Measured on 2 shared CPU cores with the defaults: 211 to 365 s per seed (pretraining included).

Usage: python examples/finetune.py [--pretrain-steps N] [--timesteps N] [--seed 0] [--output-dir .]
"""

import argparse
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.monitor import Monitor

from sb3_sql import SQL, LogLinearSchedule
from sb3_sql.zoo import load_hyperparams, read_zoo_entry

ENV_ID = "MultiGoal-v0"
TASK_WEIGHTS = (0.0, 0.0, 1.0, 0.0)  # pays only for the goal (0, 5)


def learning_curve(
    model: SQL, timesteps: int, eval_freq: int, eval_episodes: int, seed: int, log_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Train ``model`` for ``timesteps`` steps; return the evaluation steps and mean returns (stochastic policy).

    The evaluations are also saved by SB3's ``EvalCallback`` in ``log_path/evaluations.npz``.
    """
    eval_env = Monitor(gym.make(ENV_ID, goal_weights=TASK_WEIGHTS))
    eval_env.reset(seed=seed + 1000)
    evaluation = EvalCallback(
        eval_env, n_eval_episodes=eval_episodes, eval_freq=eval_freq, log_path=str(log_path), deterministic=False, verbose=0
    )
    model.learn(timesteps, callback=evaluation, progress_bar=True)
    return np.array(evaluation.evaluations_timesteps), np.mean(evaluation.evaluations_results, axis=1)


def main() -> None:
    shipped_timesteps = int(read_zoo_entry(ENV_ID)["n_timesteps"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=shipped_timesteps, help="steps on MultiGoal-v0 (all goals)")
    parser.add_argument("--timesteps", type=int, default=6000, help="steps on the (0, 5) task, for each agent")
    parser.add_argument("--ent-coef", type=float, default=None, help="initial temperature (default: the shipped one)")
    parser.add_argument("--ent-coef-end", type=float, default=1.0)
    parser.add_argument("--anneal-fraction", type=float, default=0.5)
    parser.add_argument("--eval-freq", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=Path("."))
    args = parser.parse_args()
    th.set_num_threads(1)  # fastest for these small networks on a CPU
    args.output_dir.mkdir(parents=True, exist_ok=True)
    hyperparameters = load_hyperparams(ENV_ID)
    shipped_ent_coef = hyperparameters.pop("ent_coef")
    ent_coef = shipped_ent_coef if args.ent_coef is None else args.ent_coef

    def schedule() -> LogLinearSchedule:
        return LogLinearSchedule(ent_coef, args.ent_coef_end, args.anneal_fraction)

    pretrained_path = args.output_dir / f"finetune_pretrained_seed{args.seed}_steps{args.pretrain_steps}.zip"
    if not pretrained_path.exists():
        pretrained = SQL("MlpPolicy", ENV_ID, ent_coef=ent_coef, seed=args.seed, **hyperparameters)
        pretrained.learn(args.pretrain_steps, progress_bar=True).save(pretrained_path)
    task = gym.make(ENV_ID, goal_weights=TASK_WEIGHTS)
    finetuned = SQL.load(pretrained_path, env=task, ent_coef=schedule())
    finetuned.set_random_seed(args.seed)
    evaluation = (args.timesteps, args.eval_freq, args.eval_episodes, args.seed)
    curves = {"fine-tuned": learning_curve(finetuned, *evaluation, args.output_dir / f"finetune_finetuned_seed{args.seed}")}
    scratch = SQL(
        "MlpPolicy", gym.make(ENV_ID, goal_weights=TASK_WEIGHTS), ent_coef=schedule(), seed=args.seed, **hyperparameters
    )
    curves["from scratch"] = learning_curve(scratch, *evaluation, args.output_dir / f"finetune_scratch_seed{args.seed}")

    print(f"seed {args.seed}: mean return of {args.eval_episodes} stochastic episodes on the (0, 5) task")
    for name, (steps, returns) in curves.items():
        print(f"  {name}: " + " ".join(f"{step}:{value:.1f}" for step, value in zip(steps, returns, strict=True)))
    scratch_final = curves["from scratch"][1][-1]
    steps, returns = curves["fine-tuned"]
    reached = steps[returns >= scratch_final]
    print(f"  from-scratch final return {scratch_final:.1f} after {args.timesteps} steps")
    print(f"  fine-tuned reaches it at step {reached[0] if len(reached) else 'never'}")

    figure, axis = plt.subplots(figsize=(6, 4))
    for name, (steps, returns) in curves.items():
        axis.plot(steps, returns, marker="o", label=name)
    axis.set_xlabel("environment steps on the (0, 5) task")
    axis.set_ylabel(f"mean return ({args.eval_episodes} episodes)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(args.output_dir / f"finetune_curve_seed{args.seed}.png")
    print(f"wrote {args.output_dir / f'finetune_curve_seed{args.seed}.png'}")


if __name__ == "__main__":
    main()

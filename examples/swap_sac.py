"""A typical SB3 SAC / DQN script with SQL swapped in: only the import and the class name differ.

The pipeline is SB3's, unchanged: vectorized training envs, an ``EvalCallback`` that keeps the best
model, a ``CheckpointCallback``, ``evaluate_policy``, ``save``/``load`` and ``predict``. It runs on a
continuous task (Pendulum-v1, where the original script used SAC) and on a discrete one
(CartPole-v1, where it used DQN, which SAC cannot do). To compare, pass ``--algo baseline``.

    python examples/swap_sac.py [--algo sql|baseline] [--timesteps 5000] [--log-dir swap_sac_logs]
"""

import argparse
from pathlib import Path

import torch as th
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_sql import SQL

# The only change from the original scripts: SAC -> SQL and DQN -> SQL.
ALGORITHMS = {"sql": {"Pendulum-v1": SQL, "CartPole-v1": SQL}, "baseline": {"Pendulum-v1": SAC, "CartPole-v1": DQN}}


def train_evaluate_save_load(algorithm, env_id: str, timesteps: int, log_dir: Path, seed: int) -> None:
    """The user's pipeline, written once for SAC / DQN and left as it was."""
    env = make_vec_env(env_id, n_envs=2, seed=seed)
    eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 1000)
    callbacks = [
        # eval_freq counts calls, one per step of the 2 training envs: 4 evaluations per run.
        EvalCallback(eval_env, n_eval_episodes=5, eval_freq=timesteps // 8, best_model_save_path=str(log_dir / "best")),
        CheckpointCallback(save_freq=max(timesteps // 2, 1), save_path=str(log_dir / "checkpoints"), save_replay_buffer=True),
    ]
    model = algorithm("MlpPolicy", env, learning_starts=500, seed=seed, verbose=0)
    model.learn(timesteps, callback=callbacks, progress_bar=True)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=10)
    print(f"{algorithm.__name__} on {env_id}: mean return {mean_return:.1f} +/- {std_return:.1f} after {timesteps} steps")

    model.save(log_dir / "model")
    model.save_replay_buffer(log_dir / "replay_buffer")
    loaded = algorithm.load(log_dir / "model", env=env)
    loaded.load_replay_buffer(log_dir / "replay_buffer")
    best = algorithm.load(log_dir / "best" / "best_model")
    obs = eval_env.reset()
    same = (loaded.predict(obs, deterministic=True)[0] == model.predict(obs, deterministic=True)[0]).all()
    print(f"  reloaded model acts as the trained one: {same}; best model's action: {best.predict(obs)[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=sorted(ALGORITHMS), default="sql")
    parser.add_argument("--timesteps", type=int, default=5000)
    parser.add_argument("--log-dir", type=Path, default=Path("swap_sac_logs"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(1)  # fastest for these small networks on a CPU

    for env_id, algorithm in ALGORITHMS[args.algo].items():
        train_evaluate_save_load(algorithm, env_id, args.timesteps, args.log_dir / algorithm.__name__ / env_id, args.seed)


if __name__ == "__main__":
    main()

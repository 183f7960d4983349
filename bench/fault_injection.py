"""Fault injection: training runs killed with SIGKILL at random points, resumed with ``load_checkpoint``.

One uninterrupted run is the reference. Each trial starts the same run in a child process with
``ResumableCheckpointCallback(keep_last=2)`` and kills it with ``SIGKILL``: odd trials at a time
drawn uniformly between the start of the first checkpoint and the end of the reference run (timed
in a child process), even trials while a checkpoint is being written (as soon as a ``*.tmp`` file
of a randomly chosen checkpoint appears, after a random delay of 0 to 20 ms). Then, in this process:

* resumed: ``load_checkpoint`` on the folder as the kill left it, trained to the end;
* damaged: the same on a copy whose newest complete checkpoint is damaged (a file truncated, one
  byte of a file changed, or a file deleted, in turn), which must fall back to the one before, or,
  when it is the only one, be refused.

Each finished run is compared with the reference bit for bit (policy parameters, optimizer
states, replay buffer, last observations and counters, through a SHA-256 digest).

    python bench/fault_injection.py [--trials 16] [--seed 0] [--timesteps 1000] [--save-freq 100]
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th

from sb3_sql import SQL, ResumableCheckpointCallback, load_checkpoint
from sb3_sql.resume import complete_checkpoints

ENV_ID = "Pendulum-v1"
#: Small networks and a buffer of 1e5 transitions (4.4 MB per checkpoint), so that a trial takes seconds.
MODEL_KWARGS = {
    "learning_starts": 100,
    "batch_size": 32,
    "buffer_size": 100_000,
    "seed": 0,
    "policy_kwargs": {"net_arch": [32, 32]},
}
KEEP_LAST = 2
DAMAGES = ("truncate model", "change a byte of buffer", "delete model", "truncate resume state")


def training_state_digest(model: SQL) -> str:
    """SHA-256 of everything a resumed run must reproduce: parameters, optimizer states, buffer, counters."""
    digest = hashlib.sha256()
    for value in model.policy.state_dict().values():
        digest.update(value.cpu().numpy().tobytes())
    for optimizer in (model.actor.optimizer, model.critic.optimizer):
        for moments in optimizer.state_dict()["state"].values():
            for value in moments.values():
                digest.update(th.as_tensor(value).cpu().numpy().tobytes())
    buffer = model.replay_buffer
    assert buffer is not None
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        digest.update(getattr(buffer, name).tobytes())
    digest.update(np.asarray(model._last_obs).tobytes())
    digest.update(json.dumps([model.num_timesteps, model._n_updates, model._episode_num, buffer.pos, buffer.full]).encode())
    return digest.hexdigest()


def train(save_path: str, timesteps: int, save_freq: int) -> SQL:
    """The run of every trial, from scratch, with checkpoints."""
    model = SQL("MlpPolicy", ENV_ID, **MODEL_KWARGS)
    return model.learn(timesteps, callback=ResumableCheckpointCallback(save_freq, save_path, keep_last=KEEP_LAST))


def resume(save_path: Path, timesteps: int, save_freq: int) -> dict:
    """Resume from ``save_path`` to ``timesteps`` steps: the step resumed from and the digest, or the error."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The checkpoint of step .* does not load")
            model = load_checkpoint(str(save_path), gym.make(ENV_ID))
        resumed_from = model.num_timesteps
        callback = ResumableCheckpointCallback(save_freq, str(save_path), keep_last=KEEP_LAST)
        model.learn(timesteps - model.num_timesteps, callback=callback, reset_num_timesteps=False)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return {"resumed_from": resumed_from, "digest": training_state_digest(model)}  # type: ignore[arg-type]


def worker_command(save_path: Path, args: argparse.Namespace) -> list[str]:
    """The command of a child process that runs ``train`` into ``save_path``."""
    return [
        sys.executable,
        __file__,
        "--worker",
        str(save_path),
        "--timesteps",
        str(args.timesteps),
        "--save-freq",
        str(args.save_freq),
    ]


def child_environment() -> dict[str, str]:
    python_path = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, python_path))}


def timed_run(save_path: Path, args: argparse.Namespace) -> tuple[float, float]:
    """Run ``train`` in a child process: when its first checkpoint file appeared and when it ended (seconds)."""
    save_path.mkdir()
    process = subprocess.Popen(worker_command(save_path, args), env=child_environment())
    start, first_write = time.perf_counter(), None
    while process.poll() is None:
        if first_write is None and os.listdir(save_path):
            first_write = time.perf_counter() - start
        time.sleep(0.001)
    assert process.returncode == 0 and first_write is not None
    return first_write, time.perf_counter() - start


def kill_at_random(
    save_path: Path, args: argparse.Namespace, mid_checkpoint: bool, rng: random.Random, window: tuple[float, float]
) -> None:
    """Start ``train`` in a child process; SIGKILL it at a random time in ``window`` (seconds after its start),
    or while a random checkpoint is written."""
    save_path.mkdir()
    process = subprocess.Popen(worker_command(save_path, args), env=child_environment())
    start = time.perf_counter()
    if mid_checkpoint:
        # Pendulum's episodes last 200 steps: a checkpoint at each episode start before the end of the run.
        n_checkpoints = (args.timesteps - 1) // max(200, args.save_freq)
        target, seen = rng.randint(1, n_checkpoints), set()
        while process.poll() is None:
            writing = {name.split("_steps")[0].rsplit("_", 1)[-1] for name in os.listdir(save_path) if name.endswith(".tmp")}
            seen |= writing
            if len(seen) >= target and writing:
                time.sleep(rng.uniform(0.0, 0.02))
                break
            time.sleep(0.0005)
    else:
        deadline = start + rng.uniform(*window)
        while process.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()


def checkpoint_steps_with_files(save_path: Path) -> set[int]:
    """The step counts of which ``save_path`` holds a file, complete checkpoint or not (``.tmp`` included)."""
    return {int(name.split("_steps.")[0].rsplit("_", 1)[-1]) for name in os.listdir(save_path) if "_steps." in name}


def damage_newest(save_path: Path, kind: str) -> str:
    """Damage the newest complete checkpoint in ``save_path``; return what was done."""
    steps = complete_checkpoints(str(save_path))[-1]
    model_path = save_path / f"rl_model_{steps}_steps.zip"
    buffer_path = save_path / f"rl_model_replay_buffer_{steps}_steps.pkl"
    state_path = save_path / f"rl_model_resume_state_{steps}_steps.npz"
    if kind == "truncate model":
        model_path.write_bytes(model_path.read_bytes()[: model_path.stat().st_size // 2])
    elif kind == "change a byte of buffer":
        content = bytearray(buffer_path.read_bytes())
        content[len(content) // 2] ^= 0xFF
        buffer_path.write_bytes(bytes(content))
    elif kind == "delete model":
        model_path.unlink()
    else:
        state_path.write_bytes(state_path.read_bytes()[: state_path.stat().st_size // 2])
    return f"{kind} ({steps})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times (the training seed is 0)")
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--save-freq", type=int, default=100)
    parser.add_argument("--worker", metavar="SAVE_PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    th.set_num_threads(1)
    if args.worker:
        train(args.worker, args.timesteps, args.save_freq)
        return

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        start = time.perf_counter()
        window = timed_run(root / "reference", args)
        reference = {
            "digest": training_state_digest(train(str(root / "reference_in_process"), args.timesteps, args.save_freq))
        }
        print(f"{ENV_ID}, {args.timesteps} steps, checkpoints every {args.save_freq}+ steps, keep_last={KEEP_LAST}")
        print(
            f"reference run in a child process: first checkpoint written from {window[0]:.1f} s, end at "
            f"{window[1]:.1f} s; digest {reference['digest'][:12]}\n"
        )
        header = ("trial", "kill", "mid-ckpt", "complete", "resumed", "same", "damaged newest", "resumed", "same")
        print("{:>5} {:>7} {:>8} {:>12} {:>8} {:>5}  {:<40} {:>8} {:>5}".format(*header))
        counts = dict.fromkeys(
            ("killed", "no checkpoint", "mid", "same", "damaged runs", "damaged same", "single damaged", "single refused"), 0
        )
        for trial in range(args.trials):
            mid_checkpoint = trial % 2 == 0
            save_path = root / f"trial{trial}"
            kill_at_random(save_path, args, mid_checkpoint, rng, window)
            counts["killed"] += 1
            complete = complete_checkpoints(str(save_path))
            in_progress = bool(checkpoint_steps_with_files(save_path) - set(complete))  # files of an unfinished one
            counts["mid"] += in_progress
            row = [
                trial,
                "ckpt" if mid_checkpoint else "random",
                "yes" if in_progress else "no",
                ",".join(map(str, complete)) or "-",
            ]
            if not complete:
                counts["no checkpoint"] += 1
                print("{:>5} {:>7} {:>8} {:>12}  (killed before its first complete checkpoint)".format(*row), flush=True)
                continue
            damaged_path = root / f"trial{trial}_damaged"
            shutil.copytree(save_path, damaged_path)
            resumed = resume(save_path, args.timesteps, args.save_freq)
            same = resumed.get("digest") == reference["digest"]
            counts["same"] += same
            row += [resumed.get("resumed_from", resumed.get("error")), "yes" if same else "NO"]
            damage = damage_newest(damaged_path, DAMAGES[(counts["killed"] - counts["no checkpoint"] - 1) % len(DAMAGES)])
            fallback = resume(damaged_path, args.timesteps, args.save_freq)
            damaged_same = fallback.get("digest") == reference["digest"]
            if len(complete) > 1:
                counts["damaged runs"] += 1
                counts["damaged same"] += damaged_same
            else:  # nothing to fall back to: load_checkpoint must refuse
                counts["single damaged"] += 1
                counts["single refused"] += fallback.get("error", "").startswith("ValueError: No complete checkpoint")
            outcome = fallback.get("resumed_from", fallback.get("error", "").split(":")[0])
            row += [damage, outcome, "yes" if damaged_same else "NO" if len(complete) > 1 else "-"]
            print("{:>5} {:>7} {:>8} {:>12} {:>8} {:>5}  {:<40} {:>8} {:>5}".format(*row), flush=True)
            shutil.rmtree(save_path)
            shutil.rmtree(damaged_path)
        resumable = counts["killed"] - counts["no checkpoint"]
        print(
            f"\n{counts['killed']} runs killed, {counts['mid']} of them while writing a checkpoint; "
            f"{counts['no checkpoint']} before their first complete checkpoint."
        )
        print(f"resumed and identical to the uninterrupted run: {counts['same']} of {resumable}")
        print(
            f"newest checkpoint damaged, an older one present: resumed from it and identical in "
            f"{counts['damaged same']} of {counts['damaged runs']}"
        )
        print(
            f"newest checkpoint damaged, the only one: refused with 'No complete checkpoint ... loads' in "
            f"{counts['single refused']} of {counts['single damaged']}"
        )
        print(f"total time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

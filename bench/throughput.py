"""SQL vs SB3 SAC training throughput (env-steps/s, 1 gradient step per env step) and peak memory.

Throughput: in one process, one torch thread, alternating per repetition SQL at its defaults,
SAC at its defaults, and SQL at SAC's network size and batch (2 x 256, batch 256). SAC's
defaults are already 2 x 256 and batch 256, so the same SAC run is the reference of both
ratios of its repetition. Env-steps/s are counted once learning has started
(``bench/common.py``'s ``TrainingThroughput``); both learn from step ``--learning-starts``. The
SQL/SAC ratios are the median over the repetitions.

Peak memory: each configuration runs again, ``--memory-steps`` steps after learning starts, in a
fresh Python subprocess (Linux only). It reports its resident set size once the model is built
(``VmRSS``), then resets the kernel's high-water mark (``/proc/self/clear_refs``, 5) and reports
the peak during training (``VmHWM``); the difference is what training adds. A high-water mark
belongs to a process, so only a fresh process per run attributes it to that run. The replay
buffer is allocated lazily by numpy, so only its touched pages count.

With ``--compile``, each repetition also runs the three configurations with their networks
compiled by ``torch.compile`` (``nn.Module.compile``, default mode) and prints the speed-up of
compiling; the compiled runs first train ``--compile-warmup`` steps untimed, so the compilation
(once per input shape) is not counted. ``nn.Module.compile`` compiles the modules' ``forward``:
SQL's passes over particles (``sb3_sql.policies.mlp_on_particles``) call the layers directly and
stay eager, so for SQL this times the critic's minibatch pass and acting only.

``--clock process`` counts the CPU time of the process instead of the wall time: on a machine
shared with other work it is less disturbed by the other processes (one torch thread, so CPU time
is close to the wall time of an idle machine).

``--configs`` runs a subset (SAC always; its ratios are the ones of the configurations run).

    python bench/throughput.py [--envs Pendulum-v1 HalfCheetah-v5] [--steps 2000] [--pairs 3]
                               [--memory-steps 500] [--device cpu] [--compile] [--configs "SQL defaults"]

Run from the repository root, ``PYTHONPATH=. python bench/throughput.py`` times the ``sb3_sql`` of
the checkout rather than the installed one.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch as th

from common import ALGOS, TrainingThroughput

# name -> (algorithm, keyword arguments beyond learning_starts and seed)
CONFIGS = {
    "SQL defaults": ("SQL", {}),
    "SAC defaults": ("SAC", {}),
    "SQL 2x256 b256": ("SQL", {"batch_size": 256, "policy_kwargs": {"net_arch": [256, 256]}}),
}


def steps_per_second(
    config: str,
    env_id: str,
    seed: int,
    steps: int,
    learning_starts: int,
    device: str,
    compile_warmup: int | None = None,
    clock: str = "wall",
) -> float:
    """Env-steps/s of one configuration over ``steps`` training steps after ``learning_starts``.

    With ``compile_warmup``, the actor and critics are compiled and trained that many steps past
    ``learning_starts`` before the timed steps.
    """
    algo, kwargs = CONFIGS[config]
    model = ALGOS[algo]("MlpPolicy", env_id, seed=seed, learning_starts=learning_starts, device=device, **kwargs)
    timer = TrainingThroughput(CLOCKS[clock])
    if compile_warmup is None:
        model.learn(steps + learning_starts, callback=timer)
    else:
        for module in (model.actor, model.critic, model.critic_target):
            module.compile()
        model.learn(learning_starts + compile_warmup)
        model.learn(steps, callback=timer, reset_num_timesteps=False)
    return timer.steps_per_second


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def memory_status_mib(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process from ``/proc/self/status``, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise ValueError(f"{field} not in /proc/self/status: peak memory needs Linux")


def peak_memory_child(config: str, env_id: str, steps: int, learning_starts: int, device: str) -> None:
    """Run in a fresh subprocess: print the RSS (MiB) with the model built and the peak RSS during training, as JSON."""
    th.set_num_threads(1)
    algo, kwargs = CONFIGS[config]
    model = ALGOS[algo]("MlpPolicy", env_id, seed=0, learning_starts=learning_starts, device=device, **kwargs)
    built = memory_status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    model.learn(steps + learning_starts)
    print(json.dumps({"built": built, "trained": memory_status_mib("VmHWM")}))


def peak_memory(config: str, env_id: str, steps: int, learning_starts: int, device: str) -> dict:
    command = [sys.executable, __file__, "--memory-child", config, "--envs", env_id, "--memory-steps", str(steps)]
    command += ["--learning-starts", str(learning_starts), "--device", device]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Pendulum-v1", "HalfCheetah-v5"])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run, after learning starts")
    parser.add_argument("--pairs", type=int, default=3, help="repetitions of SQL, SAC, SQL 2x256")
    parser.add_argument("--learning-starts", type=int, default=100)
    parser.add_argument("--memory-steps", type=int, default=500, help="training steps of each peak-memory run (0: skip)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="also time each configuration with torch.compile")
    parser.add_argument("--compile-warmup", type=int, default=300, help="untimed steps of a compiled run")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall", help="wall time or this process's CPU time")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), help="configurations to run")
    parser.add_argument("--memory-child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    th.set_num_threads(1)
    if args.memory_child:
        peak_memory_child(args.memory_child, args.envs[0], args.memory_steps, args.learning_starts, args.device)
        return

    print(f"torch {th.__version__}, {th.get_num_threads()} thread, device {args.device}, {args.clock} clock")
    for env_id in args.envs:
        print(f"\n{env_id}: {args.steps} steps after {args.learning_starts} warm-up steps, {args.pairs} repetitions")
        configs = [config for config in CONFIGS if config in args.configs or config == "SAC defaults"]
        ratios: dict[str, list[float]] = {}
        speedups: dict[str, list[float]] = {}
        for repetition in range(args.pairs):
            sps = {
                config: steps_per_second(
                    config, env_id, repetition, args.steps, args.learning_starts, args.device, clock=args.clock
                )
                for config in configs
            }
            for config in configs:
                if config != "SAC defaults":
                    ratios.setdefault(config, []).append(sps[config] / sps["SAC defaults"])
            figures = ", ".join(f"{config} {value:.1f}" for config, value in sps.items())
            print(f"  repetition {repetition}: {figures} steps/s", flush=True)
            if args.compile:
                for config in configs:
                    compiled = steps_per_second(
                        config,
                        env_id,
                        repetition,
                        args.steps,
                        args.learning_starts,
                        args.device,
                        args.compile_warmup,
                        args.clock,
                    )
                    speedups.setdefault(config, []).append(compiled / sps[config])
                    print(f"    {config} compiled: {compiled:.1f} steps/s ({compiled / sps[config]:.2f} x)", flush=True)
        for config, values in ratios.items():
            per_repetition = ", ".join(f"{value:.2f}" for value in values)
            print(f"  {config} / SAC defaults: {per_repetition}; median {statistics.median(values):.2f}")
        for config, values in speedups.items():
            print(f"  torch.compile speed-up of {config}, median: {statistics.median(values):.2f}")
        if args.memory_steps > 0:
            print(f"  RSS of a fresh process (MiB): model built / peak over {args.memory_steps} training steps (increase):")
            for config in configs:
                memory = peak_memory(config, env_id, args.memory_steps, args.learning_starts, args.device)
                increase = memory["trained"] - memory["built"]
                print(f"    {config:>15}: {memory['built']:.0f} / {memory['trained']:.0f} (+{increase:.0f})", flush=True)


if __name__ == "__main__":
    main()

"""Where the time of one SQL gradient step goes (1 gradient step per env step, one torch thread).

The phases are timed with ``time.perf_counter`` by wrapping, in this script only, the functions
and methods that ``SQL.train()`` calls; each phase gets its exclusive time (a nested phase pauses
its parent):

- soft value: ``soft_q_target``: ``particle_q_values`` on the target critic (M uniform actions),
  ``importance_sampled_soft_value`` (Eq. 10) and the soft Bellman target;
- critic step: ``policy.critic_q_values`` (critic forward), the loss, its backward, finite check
  and Adam step (Eq. 11);
- sampler / Stein step: ``sampler_loss`` (K particles, Q at the fixed ones, grad log p, Stein
  direction) without the kernel, then its backward, finite check and Adam step (Eq. 13-14);
- kernel: ``adaptive_isotropic_gaussian_kernel`` (pairwise distances, median bandwidth);
- target update: ``polyak_update`` (a hard copy every 1000 steps by default, so per step it is
  that cost / 1000);
- SB3 overhead: ``collect_rollouts`` (sampler forward for the action, env step, buffer add),
  replay sampling, and the rest of ``train()`` (learning rate, logger).

SB3 SAC's train step and collect_rollouts are timed the same way for reference.

    python bench/profile_update.py [--envs Pendulum-v1 HalfCheetah-v5] [--steps 1000]
    python bench/profile_update.py --envs HalfCheetah-v5 --no-sac --sql-kwargs '{}' '{"kernel_n_particles": 64}'

``--sql-kwargs`` replaces the three SQL configurations below with one per JSON object given.
"""

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch as th
from stable_baselines3 import SAC

import sb3_sql.sql as sql_module
from sb3_sql import SQL

SQL_PHASES = (
    "soft value",
    "critic step",
    "sampler / Stein step",
    "kernel",
    "target update",
    "replay sampling",
    "collect_rollouts",
    "train() rest",
)
CONFIGS = {
    "defaults (2x128, batch 128, K=32, M=16)": {},
    "K=M=16 (the reference's particles)": {"kernel_n_particles": 16},
    "2x256, batch 256, K=32, M=16": {"batch_size": 256, "policy_kwargs": {"net_arch": [256, 256]}},
}


class PhaseTimer:
    """Exclusive wall time per named phase; entering a nested phase pauses the enclosing one."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []  # [name, start of the current uninterrupted stretch]

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        now = time.perf_counter()
        if self.stack:
            self.totals[self.stack[-1][0]] += now - self.stack[-1][1]
        self.stack.append([name, now])
        try:
            yield
        finally:
            now = time.perf_counter()
            popped, start = self.stack.pop()
            self.totals[popped] += now - start
            if self.stack:
                self.stack[-1][1] = now

    def wrap(self, name: str | Callable[..., str], function: Callable) -> Callable:
        """``function`` timed as phase ``name`` (or ``name(*args)``, chosen per call)."""

        def timed(*args, **kwargs):
            with self.phase(name(*args) if callable(name) else name):
                return function(*args, **kwargs)

        return timed


def instrument_sql(model: SQL, timer: PhaseTimer) -> None:
    """Wrap what ``SQL.train()`` calls so that its time lands in ``SQL_PHASES``."""
    model.collect_rollouts = timer.wrap("collect_rollouts", model.collect_rollouts)
    model.train = timer.wrap("train() rest", model.train)
    model.replay_buffer.sample = timer.wrap("replay sampling", model.replay_buffer.sample)
    model.soft_q_target = timer.wrap("soft value", model.soft_q_target)
    model.policy.critic_q_values = timer.wrap("critic step", model.policy.critic_q_values)
    model.critic.optimizer.step = timer.wrap("critic step", model.critic.optimizer.step)
    model.actor.optimizer.step = timer.wrap("sampler / Stein step", model.actor.optimizer.step)
    particle_q_values = model.policy.particle_q_values
    model.policy.particle_q_values = timer.wrap(  # an instance attribute shadows the static method
        lambda critic, *_: "soft value" if critic is model.critic_target else "sampler / Stein step", particle_q_values
    )
    sampler_loss, critic_loss = model.sampler_loss, model._critic_loss
    next_backward = []

    def critic_loss_then_backward(*args):
        next_backward.append("critic step")  # the next backward() is the critic's (Eq. 11)
        return critic_loss(*args)

    model._critic_loss = timer.wrap("critic step", critic_loss_then_backward)

    def sampler_loss_then_backward(*args):
        next_backward.append("sampler / Stein step")  # the next backward() is the sampler's (Eq. 14)
        return sampler_loss(*args)

    model.sampler_loss = timer.wrap("sampler / Stein step", sampler_loss_then_backward)
    backward = th.Tensor.backward

    def timed_backward(tensor, *args, **kwargs):
        if not next_backward:
            return backward(tensor, *args, **kwargs)  # the temperature's: stays in the enclosing phase
        with timer.phase(next_backward.pop()):
            return backward(tensor, *args, **kwargs)

    th.Tensor.backward = timed_backward
    sql_module.adaptive_isotropic_gaussian_kernel = timer.wrap("kernel", sql_module.adaptive_isotropic_gaussian_kernel)
    sql_module.polyak_update = timer.wrap("target update", sql_module.polyak_update)
    sql_module.check_finite_update = timer.wrap(
        lambda name, *_: "sampler / Stein step" if name == "sampler" else "critic step", sql_module.check_finite_update
    )


def profile(algo, kwargs: dict, env_id: str, steps: int, learning_starts: int) -> dict[str, float]:
    """Milliseconds per env step (= per gradient step) of each phase over ``steps`` steps after learning starts."""
    originals = (
        th.Tensor.backward,
        sql_module.adaptive_isotropic_gaussian_kernel,
        sql_module.polyak_update,
        sql_module.check_finite_update,
    )
    model = algo("MlpPolicy", env_id, seed=0, learning_starts=learning_starts, **kwargs)
    model.learn(learning_starts + 10)  # warm-up with random actions, first updates
    timer = PhaseTimer()
    try:
        if algo is SQL:
            instrument_sql(model, timer)
        else:
            model.collect_rollouts = timer.wrap("collect_rollouts", model.collect_rollouts)
            model.train = timer.wrap("train() rest", model.train)
            model.replay_buffer.sample = timer.wrap("replay sampling", model.replay_buffer.sample)
        start = time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        total = time.perf_counter() - start
    finally:
        (
            th.Tensor.backward,
            sql_module.adaptive_isotropic_gaussian_kernel,
            sql_module.polyak_update,
            sql_module.check_finite_update,
        ) = originals
    result = {name: 1000 * seconds / steps for name, seconds in timer.totals.items()}
    result["total"] = 1000 * total / steps
    return result


def report(title: str, times: dict[str, float], names: tuple[str, ...]) -> None:
    print(f"  {title}: {times['total']:.2f} ms per step ({1000 / times['total']:.0f} steps/s)")
    for name in names:
        print(f"    {name:>22} {times.get(name, 0.0):7.3f} ms  {100 * times.get(name, 0.0) / times['total']:5.1f} %")
    unaccounted = times["total"] - sum(times.get(name, 0.0) for name in names)
    share = 100 * unaccounted / times["total"]
    print(f"    {'learn() loop, callbacks':>22} {unaccounted:7.3f} ms  {share:5.1f} %", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Pendulum-v1", "HalfCheetah-v5"])
    parser.add_argument("--steps", type=int, default=1000, help="profiled env steps (1 gradient step each)")
    parser.add_argument("--learning-starts", type=int, default=100)
    parser.add_argument(
        "--sql-kwargs", nargs="+", metavar="JSON", help="SQL configurations to profile instead of the built-in ones"
    )
    parser.add_argument("--no-sac", action="store_true", help="leave SAC out")
    args = parser.parse_args()
    configs = {text: json.loads(text) for text in args.sql_kwargs} if args.sql_kwargs else CONFIGS
    th.set_num_threads(1)
    print(f"torch {th.__version__}, {th.get_num_threads()} thread; ms per env step = per gradient step, {args.steps} steps")
    for env_id in args.envs:
        print(f"\n{env_id}")
        for title, kwargs in configs.items():
            report(f"SQL {title}", profile(SQL, kwargs, env_id, args.steps, args.learning_starts), SQL_PHASES)
        if args.no_sac:
            continue
        report(
            "SAC defaults (2x256, batch 256)",
            profile(SAC, {}, env_id, args.steps, args.learning_starts),
            ("train() rest", "replay sampling", "collect_rollouts"),
        )


if __name__ == "__main__":
    main()

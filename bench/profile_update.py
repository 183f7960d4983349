"""Where the time of one gradient step goes, by phase, SQL beside SB3's SAC (1 gradient step per env step).

The phases are timed with ``time.perf_counter`` (``--clock process``: the process's CPU time, for a
shared machine) by wrapping, in this script only, the functions
and methods that each algorithm's ``train()`` calls, as ``torch.profiler.record_function`` would
mark them; each phase gets its exclusive time (a nested phase pauses its parent):

- soft value: the target of the critic. SQL: ``soft_q_target`` (the target critic on ``M``
  actions per next state, Eq. 10, and the soft Bellman target); SAC: the actor's next actions
  and the target critics on them.
- critic step: the critic's forward pass on the minibatch's actions, the loss, its backward pass,
  the finite check (SQL) and the Adam step.
- sampler step: SQL: ``sampler_loss`` (``K`` particles, the score at the particles, the kernel and
  the Stein direction, Eq. 13-14), its backward pass, the finite check and the Adam step; SAC:
  the actor's actions, the critic on them, the actor loss, backward and Adam step.
- entropy estimate: SQL only, the Kozachenko-Leonenko estimate from the particles.
- temperature: the temperature loss, backward and step (``ent_coef="auto"``: SAC's default; SQL's
  default temperature is fixed, so none).
- target update: ``polyak_update``.
- logging: ``logger.record`` in ``train()``.
- replay sampling, collect_rollouts (acting, env step, buffer), and the rest of ``train()``.

    python bench/profile_update.py [--envs HalfCheetah-v5] [--steps 1000] [--clock process]
    python bench/profile_update.py --envs HalfCheetah-v5 --sql-kwargs '{}' '{"kernel_n_particles": 16}'

``--sql-kwargs`` replaces SQL's defaults with one configuration per JSON object given. Prints a
markdown table per environment: milliseconds per env step and share of the total.
"""

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import stable_baselines3.sac.sac as sac_module
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

import sb3_sql.sql as sql_module
from sb3_sql import SQL

PHASES = (
    "soft value",
    "critic step",
    "sampler step",
    "entropy estimate",
    "temperature",
    "target update",
    "logging",
    "replay sampling",
    "collect_rollouts",
    "train() rest",
)


class PhaseTimer:
    """Exclusive time per named phase; entering a nested phase pauses the enclosing one.

    :param clock: ``time.perf_counter`` (wall time) or ``time.process_time`` (this process's CPU time).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []  # [name, start of the current uninterrupted stretch]

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        now = self.clock()
        if self.stack:
            self.totals[self.stack[-1][0]] += now - self.stack[-1][1]
        self.stack.append([name, now])
        try:
            yield
        finally:
            now = self.clock()
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


class Backward:
    """``Tensor.backward`` timed as the phase named by ``next_phase()`` (None: the enclosing phase)."""

    def __init__(self, timer: PhaseTimer, next_phase: Callable[[], str | None]) -> None:
        self.original = th.Tensor.backward
        original = self.original

        def timed_backward(tensor, *args, **kwargs):
            name = next_phase()
            if name is None:
                return original(tensor, *args, **kwargs)
            with timer.phase(name):
                return original(tensor, *args, **kwargs)

        th.Tensor.backward = timed_backward  # type: ignore[method-assign]

    def restore(self) -> None:
        th.Tensor.backward = self.original  # type: ignore[method-assign]


def instrument_common(model: SQL | SAC, timer: PhaseTimer) -> None:
    model.collect_rollouts = timer.wrap("collect_rollouts", model.collect_rollouts)
    model.train = timer.wrap("train() rest", model.train)
    model.logger.record = timer.wrap("logging", model.logger.record)


def instrument_sql(model: SQL, timer: PhaseTimer) -> Backward:
    """Wrap what ``SQL.train()`` calls so that its time lands in ``PHASES``."""
    instrument_common(model, timer)
    model.replay_buffer.sample = timer.wrap("replay sampling", model.replay_buffer.sample)
    model.soft_q_target = timer.wrap("soft value", model.soft_q_target)
    model.policy.critic_q_values = timer.wrap("critic step", model.policy.critic_q_values)
    model.critic.optimizer.step = timer.wrap("critic step", model.critic.optimizer.step)
    model.actor.optimizer.step = timer.wrap("sampler step", model.actor.optimizer.step)
    model._temperature_step = timer.wrap("temperature", model._temperature_step)
    next_backward: list[str] = []
    sampler_loss, critic_loss = model.sampler_loss, model._critic_loss

    def critic_loss_then_backward(*args):
        next_backward.append("critic step")  # the next backward() is the critic's (Eq. 11)
        return critic_loss(*args)

    def sampler_loss_then_backward(*args):
        next_backward.append("sampler step")  # the next backward() is the sampler's (Eq. 14)
        return sampler_loss(*args)

    model._critic_loss = timer.wrap("critic step", critic_loss_then_backward)
    model.sampler_loss = timer.wrap("sampler step", sampler_loss_then_backward)
    sql_module.kozachenko_leonenko_entropy = timer.wrap("entropy estimate", sql_module.kozachenko_leonenko_entropy)
    sql_module.polyak_update = timer.wrap("target update", sql_module.polyak_update)
    sql_module.check_finite_update = timer.wrap(
        lambda name, *_: {"sampler": "sampler step", "critic": "critic step"}.get(name, "temperature"),
        sql_module.check_finite_update,
    )
    # The temperature's backward() stays in the enclosing phase, "temperature".
    return Backward(timer, lambda: next_backward.pop() if next_backward else None)


def instrument_sac(model: SAC, timer: PhaseTimer) -> Backward:
    """Wrap what ``SAC.train()`` calls, in its order: actor's actions and temperature, target, critic, actor step."""
    instrument_common(model, timer)
    calls = {"action_log_prob": 0, "critic": 0, "backward": 0}
    sample = model.replay_buffer.sample

    def sample_and_start_step(*args, **kwargs):
        calls.update(action_log_prob=0, critic=0, backward=0)
        return sample(*args, **kwargs)

    def counted(key: str, names: tuple[str, ...]) -> Callable[..., str]:
        def name(*_) -> str:
            calls[key] += 1
            return names[min(calls[key], len(names)) - 1]

        return name

    model.replay_buffer.sample = timer.wrap("replay sampling", sample_and_start_step)
    # First the actions of the actor update (and of the temperature's log-probability), then the next actions.
    model.actor.action_log_prob = timer.wrap(
        counted("action_log_prob", ("sampler step", "soft value")), model.actor.action_log_prob
    )
    model.critic_target.forward = timer.wrap("soft value", model.critic_target.forward)
    model.critic.forward = timer.wrap(counted("critic", ("critic step", "sampler step")), model.critic.forward)
    model.critic.optimizer.step = timer.wrap("critic step", model.critic.optimizer.step)
    model.actor.optimizer.step = timer.wrap("sampler step", model.actor.optimizer.step)
    backward_phases: tuple[str, ...] = ("critic step", "sampler step")
    if model.ent_coef_optimizer is not None:
        model.ent_coef_optimizer.step = timer.wrap("temperature", model.ent_coef_optimizer.step)
        backward_phases = ("temperature", *backward_phases)
    sac_module.polyak_update = timer.wrap("target update", sac_module.polyak_update)
    return Backward(timer, counted("backward", backward_phases))


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def profile(algo, kwargs: dict, env_id: str, steps: int, learning_starts: int, clock: str = "wall") -> dict[str, float]:
    """Milliseconds per env step (= per gradient step) of each phase over ``steps`` steps after learning starts."""
    originals = (
        sql_module.kozachenko_leonenko_entropy,
        sql_module.polyak_update,
        sql_module.check_finite_update,
        sac_module.polyak_update,
    )
    model = algo("MlpPolicy", env_id, seed=0, learning_starts=learning_starts, **kwargs)
    model.set_logger(configure(None, []))  # kept by learn(), so its record() stays wrapped; writes nothing
    model.learn(learning_starts + 10)  # warm-up with random actions, first updates
    timer = PhaseTimer(CLOCKS[clock])
    backward = instrument_sql(model, timer) if algo is SQL else instrument_sac(model, timer)
    try:
        start = timer.clock()
        model.learn(steps, reset_num_timesteps=False)
        total = timer.clock() - start
    finally:
        backward.restore()
        (
            sql_module.kozachenko_leonenko_entropy,
            sql_module.polyak_update,
            sql_module.check_finite_update,
            sac_module.polyak_update,
        ) = originals
    result = {name: 1000 * seconds / steps for name, seconds in timer.totals.items()}
    result["total"] = 1000 * total / steps
    return result


def markdown_table(columns: dict[str, dict[str, float]]) -> str:
    """One row per phase, one ``ms (share)`` cell per profiled configuration."""
    lines = ["| phase | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name in (*PHASES, "learn() loop, callbacks"):
        cells = []
        for times in columns.values():
            unaccounted = times["total"] - sum(times.get(phase, 0.0) for phase in PHASES)
            value = unaccounted if name == "learn() loop, callbacks" else times.get(name, 0.0)
            cells.append(f"{value:.3f} ({100 * value / times['total']:.1f} %)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **total per env step** | " + " | ".join(f"**{times['total']:.2f}**" for times in columns.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["HalfCheetah-v5"])
    parser.add_argument("--steps", type=int, default=1000, help="profiled env steps (1 gradient step each)")
    parser.add_argument("--learning-starts", type=int, default=100)
    parser.add_argument("--sql-kwargs", nargs="+", metavar="JSON", default=["{}"], help="SQL configurations to profile")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall", help="wall time or this process's CPU time")
    parser.add_argument("--no-sac", action="store_true", help="leave SAC out")
    args = parser.parse_args()
    th.set_num_threads(1)
    print(
        f"torch {th.__version__}, {th.get_num_threads()} thread, {args.clock} clock; "
        f"ms per env step = per gradient step, {args.steps} steps"
    )
    for env_id in args.envs:
        columns = {}
        for text in args.sql_kwargs:
            title = "SQL defaults" if text == "{}" else f"SQL {text}"
            columns[title] = profile(SQL, json.loads(text), env_id, args.steps, args.learning_starts, args.clock)
        if not args.no_sac:
            columns["SAC defaults"] = profile(SAC, {}, env_id, args.steps, args.learning_starts, args.clock)
        print(f"\n{env_id}, ms per env step (share of the step)\n")
        print(markdown_table(columns), flush=True)


if __name__ == "__main__":
    main()

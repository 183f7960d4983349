"""Cost of acting per environment step against the cost of a gradient step, at HalfCheetah-v5's sizes.

A model with the library's defaults (17 observations, 6 actions, 2 x 128 networks) learns 600 steps
(500 of warm-up), then ``model.predict`` on one observation is timed for the deterministic action
with ``deterministic_n_particles`` 1 and 32, and for the stochastic action with
``acting_n_candidates`` 0 (one sampler draw), 16, 64 and 256 (``sb3_sql.acting``); then 100
gradient steps. One torch thread; milliseconds per call.

    python bench/acting_cost.py
"""

import time
from collections.abc import Callable

import torch as th

from sb3_sql import SQL


def milliseconds_per_call(function: Callable[[], object], n_calls: int = 300) -> float:
    """Mean wall time of ``function()`` over ``n_calls`` calls after one warm-up call (ms)."""
    function()
    start = time.perf_counter()
    for _ in range(n_calls):
        function()
    return (time.perf_counter() - start) / n_calls * 1e3


def main() -> None:
    th.set_num_threads(1)
    model = SQL("MlpPolicy", "HalfCheetah-v5", learning_starts=500, seed=0)
    model.learn(600)
    observation = model.get_env().reset()
    for n_particles in (1, 32):
        model.policy.deterministic_n_particles = n_particles
        cost = milliseconds_per_call(lambda: model.predict(observation, deterministic=True))
        print(f"predict, deterministic, deterministic_n_particles = {n_particles}: {cost:.2f} ms")
    for n_candidates in (0, 16, 64, 256):
        model.policy.acting_n_candidates = n_candidates
        cost = milliseconds_per_call(lambda: model.predict(observation))
        print(f"predict, stochastic, acting_n_candidates = {n_candidates}: {cost:.2f} ms")
    model.policy.acting_n_candidates = 0
    start = time.perf_counter()
    model.train(gradient_steps=100, batch_size=model.batch_size)
    print(f"gradient step (batch {model.batch_size}): {(time.perf_counter() - start) / 100 * 1e3:.2f} ms")


if __name__ == "__main__":
    main()

"""Shared test set-up: one torch thread, and the tiny SQL model that most tests train."""

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch as th

from sb3_sql import SQL

# Small networks train fastest on one thread on these machines (docs/installation.md, "Running the tests").
th.set_num_threads(1)

# Trains in about a second on one CPU thread. Learning starts after 50 steps: with one environment
# and the default train_freq, a run of N >= 50 steps makes N - 50 gradient steps.
TINY_KWARGS: dict[str, Any] = {
    "learning_starts": 50,
    "batch_size": 16,
    "buffer_size": 1000,
    "seed": 0,
    "policy_kwargs": {"net_arch": [16]},
}


def make_tiny_model(env: Any = "Pendulum-v1", policy: Any = "MlpPolicy", **kwargs: Any) -> SQL:
    """A tiny SQL model on ``env``; keyword arguments override :data:`TINY_KWARGS`."""
    return SQL(policy, env, **{**copy.deepcopy(TINY_KWARGS), **kwargs})


@pytest.fixture(scope="session")
def tiny_model() -> Callable[..., SQL]:
    """Factory of tiny SQL models: ``tiny_model(env="Pendulum-v1", policy="MlpPolicy", **overrides)``.

    Session-scoped (it holds no state), so module-scoped fixtures can use it too.
    """
    return make_tiny_model

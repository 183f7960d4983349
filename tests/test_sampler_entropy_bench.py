"""bench/sampler_entropy.py's fidelity measurement against a Boltzmann density known in closed form.

A tiny SQL model on a one-state task with a 3-D action box, its critic replaced by the separable
quadratic ``Q(a) = -k * sum_d a_d^2``: ``exp(Q / alpha)`` is a Gaussian of variance ``alpha / (2k)``
per coordinate, truncated to ``[-1, 1]`` (at ``k / alpha = 20``, 6.3 standard deviations: the
truncation is negligible), so ``log Z``, the entropy and ``E_p[Q]`` are known.
"""

import math
import runpy
from pathlib import Path

import pytest
import torch as th
from envs import OneStateEnv
from stable_baselines3 import SAC

from sb3_sql import SQL

BENCH = runpy.run_path(str(Path(__file__).resolve().parent.parent / "bench" / "sampler_entropy.py"))
ALPHA, CURVATURE, DIM = 0.5, 10.0, 3


class QuadraticQ(th.nn.Module):
    """A Q-network stand-in on ``[features, actions]``: ``-k * sum_d a_d^2``, shape ``[..., 1]``."""

    def forward(self, q_input: th.Tensor) -> th.Tensor:
        return (-CURVATURE * q_input[..., -DIM:].pow(2).sum(-1)).unsqueeze(-1)


@pytest.fixture(scope="module")
def measured():
    th.manual_seed(0)
    model = SQL("MlpPolicy", OneStateEnv(DIM), policy_kwargs={"net_arch": [8]}, ent_coef=ALPHA, seed=0, device="cpu")
    model.critic.q_networks = th.nn.ModuleList([QuadraticQ()])
    return BENCH["fidelity_at_state"](model, th.zeros(1, 1), 16384, 1024, (1, 16, 256))


def test_log_partition_entropy_and_expected_q_match_the_closed_form(measured):
    variance = ALPHA / (2 * CURVATURE)
    log_z = DIM * math.log(math.sqrt(math.pi * ALPHA / CURVATURE) * math.erf(math.sqrt(CURVATURE / ALPHA)))
    assert measured["log_z"] == pytest.approx(log_z, abs=0.02)
    assert measured["entropy_p"] == pytest.approx(DIM * 0.5 * math.log(2 * math.pi * math.e * variance), abs=0.05)
    assert measured["q_p"] == pytest.approx(-CURVATURE * DIM * variance, abs=0.03)
    assert measured["ess"] > 1000


def test_kl_is_the_sum_of_its_parts(measured):
    # An untrained sampler is far from the target: KL(q || p) = -H(q) - E_q[Q] / alpha + log Z > 0.
    parts = -measured["entropy_q"] - measured["q_q"] / ALPHA + measured["log_z"]
    assert measured["kl"] == pytest.approx(parts)
    assert measured["kl"] > 0.5


def test_the_resampling_policy_bound_falls_to_zero_with_more_candidates(measured):
    # One candidate is the proposal itself, far from the target; the bound KL(q_M || p) <= log Z - E log mean w
    # falls towards 0 as M grows (0.29 / 0.46 nats at M = 256 and 0.07 at M = 1024 on seeds 0 / 1).
    bounds = [measured[f"kl_resampled_{m}"] for m in (1, 16, 256)]
    assert bounds[0] > 5.0 and bounds[0] > bounds[1] > bounds[2]
    assert -0.05 < bounds[2] < 1.0


class QuadraticCritic(th.nn.Module):
    """SAC's critic stand-in: ``(obs, actions) -> (Q,)`` with the same quadratic ``Q``."""

    def forward(self, observations: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        return ((-CURVATURE * actions.pow(2).sum(-1)).unsqueeze(-1),)


@pytest.mark.parametrize("log_std, kl_range", [(0.5 * math.log(ALPHA / (2 * CURVATURE)), (-0.03, 0.03)), (0.0, (5.0, 50.0))])
def test_sac_is_measured_against_its_own_boltzmann_policy(log_std, kl_range):
    # SAC's actor set to a Gaussian of the target's variance (tanh bends it by under 1 %): KL about 0; a
    # standard normal before the tanh: far. Its entropy is its own exact -E[log pi], not an estimate.
    model = SAC("MlpPolicy", OneStateEnv(DIM), ent_coef=ALPHA, seed=0, device="cpu")
    model.critic = QuadraticCritic()
    with th.no_grad():
        for layer, bias in ((model.actor.mu, 0.0), (model.actor.log_std, log_std)):
            layer.weight.zero_()
            layer.bias.fill_(bias)
    th.manual_seed(0)
    measured = BENCH["fidelity_at_state"](model, th.zeros(1, 1), 16384, 4096)
    variance = ALPHA / (2 * CURVATURE)
    assert measured["entropy_p"] == pytest.approx(DIM * 0.5 * math.log(2 * math.pi * math.e * variance), abs=0.05)
    assert kl_range[0] < measured["kl"] < kl_range[1]
    assert measured["kl"] == pytest.approx(-measured["entropy_q"] - measured["q_q"] / ALPHA + measured["log_z"])

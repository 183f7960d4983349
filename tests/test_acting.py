"""Acting with the sampler: the deterministic action (best of fixed draws by Q) and importance resampling."""

import math

import numpy as np
import pytest
import torch as th
from envs import OneStateEnv

from sb3_sql import SQL
from sb3_sql.acting import (
    KernelDensityProposal,
    best_by_q,
    deterministic_noise,
    importance_resample,
)

FOUR_MEANS = th.tensor([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])


class FourModesQ(th.nn.Module):
    """A Q-network stand-in on ``[features, actions]``: four sharp modes, ``log mean_k N(a; mu_k, 0.1^2 I)``."""

    def forward(self, q_input: th.Tensor) -> th.Tensor:
        squared = (q_input[..., -2:].unsqueeze(-2) - FOUR_MEANS).pow(2).sum(-1)  # [..., 4]
        log_n = -0.5 * squared / 0.01 - math.log(2 * math.pi * 0.01)
        return (th.logsumexp(log_n, dim=-1) - math.log(4)).unsqueeze(-1)


class UnequalWidthsQ(th.nn.Module):
    """A 1-D Q-network stand-in: two modes of equal height, widths 0.04 and 0.16 (masses 0.2 / 0.8 at alpha 1)."""

    def forward(self, q_input: th.Tensor) -> th.Tensor:
        action = q_input[..., -1]
        narrow, wide = -0.5 * ((action + 0.5) / 0.04).pow(2), -0.5 * ((action - 0.3) / 0.16).pow(2)
        return th.logaddexp(narrow, wide).unsqueeze(-1)


class FourModesSampler(th.nn.Module):
    """A sampler stand-in on ``[features, noise]``: ``a = 0.5 tanh(5 xi)``, near the four modes except for small noise.

    At ``xi = 0`` it gives ``a = 0``, the ridge between the modes.
    """

    def forward(self, sampler_input: th.Tensor) -> th.Tensor:
        return th.atanh(0.5 * th.tanh(5 * sampler_input[..., -2:]))


def four_modes_model() -> SQL:
    model = SQL("MlpPolicy", OneStateEnv(2), ent_coef=1.0, seed=0, device="cpu", policy_kwargs={"sampler_noise_skip": False})
    model.critic.q_networks = th.nn.ModuleList([FourModesQ()])
    model.actor.pre_tanh_net = FourModesSampler()
    return model


def test_deterministic_noise_starts_at_zero_and_repeats():
    noise = deterministic_noise(8, 3)
    assert noise.shape == (8, 3)
    assert th.equal(noise[0], th.zeros(3)) and th.count_nonzero(noise[1:]) == 21
    th.manual_seed(5)
    assert th.equal(noise, deterministic_noise(8, 3))  # independent of the global random state


def test_best_by_q_takes_the_highest_value_per_state():
    actions = th.arange(12.0).reshape(2, 3, 2)
    q_values = th.tensor([[0.0, 2.0, 1.0], [5.0, -1.0, 4.0]])
    th.testing.assert_close(best_by_q(actions, q_values), th.tensor([[2.0, 3.0], [6.0, 7.0]]))


def test_deterministic_action_is_at_the_best_mode_not_between_modes():
    model = four_modes_model()
    q_best = float(FourModesQ()(th.tensor([[0.0, 0.5, 0.5]])))  # about 1.38
    observations = np.zeros((3, 1), np.float32)
    actions, _ = model.predict(observations, deterministic=True)
    q_deterministic = FourModesQ()(th.cat([th.zeros(3, 1), th.as_tensor(actions)], dim=-1)).squeeze(-1)
    assert actions.shape == (3, 2)
    assert th.all((q_deterministic - q_best).abs() <= 0.05 * abs(q_best))
    np.testing.assert_array_equal(actions, model.predict(observations, deterministic=True)[0])
    # One particle: the sampler at xi = 0, on the ridge between the modes.
    model.policy.deterministic_n_particles = 1
    ridge, _ = model.predict(observations, deterministic=True)
    np.testing.assert_allclose(ridge, 0.0, atol=1e-6)
    assert float(FourModesQ()(th.zeros(1, 3))) < q_best - 10


def test_acting_settings_survive_save_and_load(tmp_path):
    model = SQL(
        "MlpPolicy",
        "Pendulum-v1",
        learning_starts=50,
        batch_size=16,
        seed=0,
        policy_kwargs={"net_arch": [16], "deterministic_n_particles": 5, "acting_n_candidates": 7, "weight_init": "glorot"},
    )
    model.learn(60)
    model.save(tmp_path / "sql")
    loaded = SQL.load(tmp_path / "sql")
    assert loaded.policy.deterministic_n_particles == 5 and loaded.policy.acting_n_candidates == 7
    assert loaded.policy.weight_init == "glorot"
    observations = np.stack([model.observation_space.sample() for _ in range(6)])
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0], loaded.predict(observations, deterministic=True)[0]
    )
    stochastic, _ = loaded.predict(observations)
    assert stochastic.shape == (6, 1) and np.all(np.abs(stochastic) <= 2.0)


@pytest.mark.parametrize(("key", "value"), [("deterministic_n_particles", 0), ("acting_n_candidates", -1)])
def test_invalid_acting_settings_are_refused(key, value):
    with pytest.raises(ValueError, match=key):
        SQL("MlpPolicy", "Pendulum-v1", policy_kwargs={key: value})


def test_kernel_density_proposal_is_a_normalised_density_it_samples_from():
    centres = th.tensor([[[-1.0], [-0.9], [0.5], [2.0]]])  # [1, 4, 1]
    proposal = KernelDensityProposal(centres, uniform_share=0.2)
    th.testing.assert_close(proposal.bandwidths, th.tensor([[0.1, 0.1, 1.4, 1.5]]))
    grid = th.linspace(-12, 12, 48001).reshape(1, -1, 1)
    integral = proposal.log_density(grid).exp().sum() * (24 / 48000)
    assert float(integral) == pytest.approx(1.0, abs=1e-3)
    th.manual_seed(0)
    draws = proposal.sample(200_000)[0, :, 0]  # [200000]
    for low, high in [(-1.2, -0.7), (0.0, 1.0), (1.5, 3.0)]:
        inside = (grid[0, :, 0] > low) & (grid[0, :, 0] < high)
        expected = proposal.log_density(grid).exp()[0, inside].sum() * (24 / 48000)
        assert float(((draws > low) & (draws < high)).float().mean()) == pytest.approx(float(expected), abs=0.005)


def test_kernel_density_proposal_refuses_one_centre_and_a_bad_share():
    with pytest.raises(ValueError, match="2 centres"):
        KernelDensityProposal(th.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="uniform_share"):
        KernelDensityProposal(th.zeros(1, 3, 2), uniform_share=0.0)


def test_importance_resample_draws_by_weight():
    candidates = th.tensor([[[0.0], [1.0], [2.0]]]).expand(4000, -1, -1)
    log_target = th.log(th.tensor([1.0, 3.0, 0.0])).expand(4000, -1)
    th.manual_seed(0)
    chosen = importance_resample(candidates, log_target - th.zeros(4000, 3))[:, 0]
    assert set(chosen.tolist()) == {0.0, 1.0}
    assert float((chosen == 1.0).float().mean()) == pytest.approx(0.75, abs=0.03)


def test_resampled_actions_give_a_starved_narrow_mode_its_mass():
    """A sampler that puts a tenth of its draws in the narrow mode; the exact share is 0.2."""
    model = SQL("MlpPolicy", OneStateEnv(1), ent_coef=1.0, seed=0, device="cpu", policy_kwargs={"acting_n_candidates": 256})
    model.critic.q_networks = th.nn.ModuleList([UnequalWidthsQ()])

    class StarvingSampler(th.nn.Module):
        def forward(self, sampler_input: th.Tensor) -> th.Tensor:
            noise = sampler_input[..., -1:]
            narrow = noise > 1.2816  # 10 % of N(0, 1)
            actions = th.where(narrow, -0.5 + 0.02 * (noise - 1.75), 0.3 + 0.15 * th.tanh(noise))
            return th.atanh(actions) - noise  # the noise skip adds the noise back

    model.actor.pre_tanh_net = StarvingSampler()
    observations = th.zeros(4000, 1)
    th.manual_seed(0)
    with th.no_grad():
        sampler = model.actor(observations)[:, 0]
        resampled = model.policy._predict(observations)[:, 0]
    assert float((sampler < -0.2).float().mean()) == pytest.approx(0.1, abs=0.02)
    assert float((resampled < -0.2).float().mean()) == pytest.approx(0.2, abs=0.03)


def test_resampled_actions_of_a_flat_q_are_uniform_on_the_box():
    """``exp(0 / alpha)`` is uniform on ``[-1, 1]``: the tanh Jacobian's term keeps the actions off the edges."""
    model = SQL("MlpPolicy", OneStateEnv(1), ent_coef=1.0, seed=0, device="cpu", policy_kwargs={"acting_n_candidates": 64})
    model.critic.q_networks = th.nn.ModuleList([th.nn.Sequential(th.nn.Linear(2, 1))])
    th.nn.init.zeros_(model.critic.q_networks[0][0].weight)
    th.nn.init.zeros_(model.critic.q_networks[0][0].bias)
    th.manual_seed(0)
    with th.no_grad():
        actions = model.policy._predict(th.zeros(8000, 1))[:, 0]
    shares = th.histc(actions, bins=4, min=-1.0, max=1.0) / 8000
    th.testing.assert_close(shares, th.full((4,), 0.25), atol=0.03, rtol=0)

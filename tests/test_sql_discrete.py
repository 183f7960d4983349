import csv

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.logger import configure
from stable_baselines3.common.noise import NormalActionNoise

from sb3_sql import SQL, LogLinearSchedule, SoftQPolicy, SVGDPolicy
from sb3_sql.soft_value import exact_soft_value, soft_double_q_value


def fixed_batch(model, batch_size=32):
    """Sample one minibatch and make the buffer return it from now on."""
    batch = model.replay_buffer.sample(batch_size)
    model.replay_buffer.sample = lambda *args, **kwargs: batch
    return batch


def test_mlp_policy_resolves_to_the_boltzmann_policy(tmp_path):
    model = SQL("MlpPolicy", "CartPole-v1")
    assert type(model.policy) is SoftQPolicy
    assert not hasattr(model, "actor")  # no sampler network
    model.save(tmp_path / "sql")
    assert type(SQL.load(tmp_path / "sql").policy) is SoftQPolicy


@pytest.mark.parametrize("policy, env", [(SVGDPolicy, "CartPole-v1"), (SoftQPolicy, "Pendulum-v1")])
def test_policy_class_for_the_other_action_space_is_refused(policy, env):
    with pytest.raises(ValueError, match=f"{policy.__name__}'> does not fit the action space"):
        SQL(policy, env)


@pytest.mark.parametrize(
    "soft_double_q, n_steps, critic_loss", [(False, 1, "mse"), (True, 1, "mse"), (False, 3, "mse"), (False, 1, "huber")]
)
def test_critic_loss_uses_the_exact_soft_value(tiny_model, tmp_path, soft_double_q, n_steps, critic_loss):
    kwargs = {"ent_coef": 0.5, "soft_double_q": soft_double_q, "n_steps": n_steps, "policy_kwargs": {"n_critics": 2}}
    kwargs["critic_loss"] = critic_loss
    model = tiny_model("CartPole-v1", learning_starts=200, **kwargs)
    model.learn(200)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    batch = fixed_batch(model)
    with th.no_grad():
        next_q = model.critic_target(batch.next_observations)
        if soft_double_q:
            next_value = soft_double_q_value(*next_q, 0.5)
        else:
            next_value = exact_soft_value(th.minimum(*next_q), 0.5)
        discounts = 0.99 if n_steps == 1 else batch.discounts  # n-step returns: gamma^k, k <= n_steps
        target = batch.rewards + discounts * (1 - batch.dones) * next_value[:, None]
        current = [q.gather(1, batch.actions.long()) for q in model.critic(batch.observations)]
        if critic_loss == "huber":  # quadratic below a residual of 1, linear above
            residuals = [(q - target).abs() for q in current]
            expected_loss = sum(th.where(r < 1, 0.5 * r**2, r - 0.5).mean() for r in residuals)
            assert any((r > 1).any() for r in residuals)  # the linear part is exercised
        else:
            expected_loss = 0.5 * sum(((q - target) ** 2).mean() for q in current)
        assert not th.allclose(next_value, exact_soft_value(next_q[0], 0.5))  # the two critics differ
    model.train(gradient_steps=1, batch_size=32)
    assert model.logger.name_to_value["train/critic_loss"] == pytest.approx(expected_loss.item(), rel=1e-5)


def test_short_cartpole_run_logs_finite_values(tiny_model, tmp_path):
    model = tiny_model("CartPole-v1", ent_coef="auto")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    critic_before = [p.detach().clone() for p in model.critic.parameters()]
    model.learn(400, log_interval=1)
    with open(tmp_path / "progress.csv") as progress:
        last_row = list(csv.DictReader(progress))[-1]
    for key in ("critic_loss", "ent_coef", "ent_coef_loss", "entropy", "q_value", "soft_value", "n_updates"):
        assert np.isfinite(float(last_row[f"train/{key}"])), key
    assert not all(th.equal(a, b) for a, b in zip(critic_before, model.critic.parameters(), strict=True))


@pytest.mark.parametrize("target_entropy, rises", [(0.99 * np.log(2), True), (0.01, False)])
def test_automatic_temperature_moves_towards_the_target_entropy(tiny_model, target_entropy, rises):
    # Minibatches of 32 and 2 x 32 units: the entropy's trend shows within 200 updates.
    model = tiny_model(
        "CartPole-v1",
        ent_coef="auto_0.5",
        target_entropy=target_entropy,
        learning_rate=1e-2,
        learning_starts=100,
        batch_size=32,
        policy_kwargs={"net_arch": [32, 32]},
    )
    assert model.policy.ent_coef == pytest.approx(0.5)
    model.learn(300)
    assert (model.policy.ent_coef > 0.5) == rises


def test_default_target_entropy_is_half_the_uniform_entropy(tiny_model):
    assert tiny_model("CartPole-v1", ent_coef="auto").target_entropy == pytest.approx(0.5 * np.log(2))


def test_predict_samples_the_boltzmann_policy(tiny_model):
    model = tiny_model("CartPole-v1", ent_coef=0.5)
    # Make Q(s, .) = (0, alpha * log 3): softmax(Q / alpha) = (1/4, 3/4) everywhere.
    last_layer = model.critic.q_networks[0][-1]
    with th.no_grad():
        last_layer.weight.zero_()
        last_layer.bias.copy_(th.tensor([0.0, 0.5 * np.log(3)]))
    obs = np.stack([model.observation_space.sample() for _ in range(4000)])
    actions, _ = model.predict(obs)
    assert actions.shape == (4000,)
    assert abs(actions.mean() - 0.75) < 0.03
    np.testing.assert_array_equal(model.predict(obs[:10], deterministic=True)[0], np.ones(10))


def test_save_load_keeps_the_learnt_temperature(tiny_model, tmp_path):
    model = tiny_model("CartPole-v1", ent_coef="auto")
    model.learn(300)
    assert model.policy.ent_coef != pytest.approx(1.0)
    model.save(tmp_path / "sql")
    loaded = SQL.load(tmp_path / "sql", env=gym.make("CartPole-v1"))
    assert loaded.policy.ent_coef == pytest.approx(model.policy.ent_coef)
    loaded_state, state = loaded.ent_coef_optimizer.state_dict()["state"][0], model.ent_coef_optimizer.state_dict()["state"][0]
    assert loaded_state["step"] == state["step"]
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    loaded.learn(100, reset_num_timesteps=False)
    assert loaded.policy.log_ent_coef is loaded.ent_coef_optimizer.param_groups[0]["params"][0]  # still learnt


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ent_coef": "auto_-1"}, "positive initial value"),
        ({"ent_coef": "auto_x"}, "positive initial value"),
        ({"ent_coef": "manual"}, "'auto' or 'auto_<init>'"),
        ({"ent_coef": 0.0}, "positive finite"),
        ({"action_noise": NormalActionNoise(np.zeros(1), np.ones(1))}, "action_noise applies to continuous actions only"),
        ({"soft_double_q": True}, "soft_double_q needs discrete actions and policy_kwargs n_critics=2"),
        ({"critic_loss": "l1"}, "critic_loss must be one of"),
        ({"max_grad_norm": 0.0}, "max_grad_norm must be a positive float"),
        ({"max_grad_norm": float("inf")}, "max_grad_norm must be a positive float"),
    ],
)
def test_invalid_discrete_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SQL("MlpPolicy", "CartPole-v1", **kwargs)


def test_temperature_schedule_drives_the_boltzmann_policy(tiny_model):
    schedule = LogLinearSchedule(1.0, 0.01)
    model = tiny_model("CartPole-v1", ent_coef=schedule)
    assert model.policy.log_ent_coef.exp().item() == pytest.approx(1.0)  # the schedule's start
    model.learn(300)
    # The policy acts at the temperature of the last update, 1.0 annealed towards 0.01.
    expected = schedule(model._current_progress_remaining)
    assert expected < 0.05
    assert model.policy.log_ent_coef.exp().item() == pytest.approx(expected, rel=1e-5)
    assert model.logger.name_to_value["train/ent_coef"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_max_grad_norm_clips_every_network_step(tiny_model, env_id):
    model = tiny_model(env_id, max_grad_norm=1e-3)
    model.learn(100)
    optimizers = [model.critic.optimizer] + ([] if model.discrete_actions else [model.actor.optimizer])
    norms = {id(optimizer): [] for optimizer in optimizers}
    for optimizer in optimizers:

        def record(optimizer=optimizer, step=optimizer.step):
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            norms[id(optimizer)].append(th.linalg.vector_norm(th.stack([p.grad.norm() for p in params])).item())
            return step()

        optimizer.step = record
    model.train(gradient_steps=3, batch_size=model.batch_size)
    for optimizer in optimizers:
        assert len(norms[id(optimizer)]) == 3
        assert max(norms[id(optimizer)]) <= 1e-3 * (1 + 1e-4)
    unclipped = tiny_model(env_id)
    unclipped.learn(100)
    unclipped.critic.optimizer.zero_grad()
    unclipped.train(gradient_steps=1, batch_size=unclipped.batch_size)
    grad_norm = th.linalg.vector_norm(th.stack([p.grad.norm() for p in unclipped.critic.parameters() if p.grad is not None]))
    assert grad_norm > 1e-3  # without the option the same step's gradient is larger


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_a_new_temperature_takes_effect_after_load_and_assignment(tmp_path, env_id):
    model = SQL("MlpPolicy", env_id, ent_coef=1.0, learning_starts=10, seed=0, policy_kwargs={"net_arch": [8]})
    model.learn(20)
    model.save(tmp_path / "model")
    observation = np.zeros(model.observation_space.shape, dtype=np.float32)
    loaded = SQL.load(tmp_path / "model", ent_coef=0.05)
    loaded.predict(observation)
    assert loaded.policy.log_ent_coef.exp().item() == pytest.approx(0.05)
    np.testing.assert_array_equal(
        loaded.predict(observation, deterministic=True)[0], model.predict(observation, deterministic=True)[0]
    )
    loaded.ent_coef = 0.2
    loaded.predict(observation)
    assert loaded.policy.log_ent_coef.exp().item() == pytest.approx(0.2)
    # The updates of training use it too.
    loaded.set_env(gym.make(env_id))
    loaded.learn(20)
    assert loaded.policy.log_ent_coef.exp().item() == pytest.approx(0.2)
    assert loaded.logger.name_to_value["train/ent_coef"] == pytest.approx(0.2)

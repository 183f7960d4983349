import csv
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from envs import OneStateEnv
from gymnasium import spaces
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sb3_sql import REFERENCE_HYPERPARAMETERS, SQL, LogLinearSchedule, SVGDPolicy
from sb3_sql.acting import deterministic_noise

LOGGED_KEYS = [
    "train/critic_loss",
    "train/actor_loss",
    "train/ent_coef",
    "train/kernel_bandwidth",
    "train/q_value",
    "train/soft_value",
    "train/n_updates",
    "train/saturated_fraction",
]


def small_model(**kwargs):
    # On the CPU wherever run: the tests below compare with CPU tensors and hand computations.
    kwargs = {
        "learning_starts": 100,
        "batch_size": 32,
        "seed": 0,
        "device": "cpu",
        "policy_kwargs": {"net_arch": [32, 32]},
        **kwargs,
    }
    return SQL("MlpPolicy", "Pendulum-v1", **kwargs)


def parameters(module):
    return [p.detach().clone() for p in module.parameters()]


def same(first, second):
    return all(th.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("particle_space", ["pre_tanh", "post_tanh"])
def test_short_pendulum_run_learns_with_finite_losses(tmp_path, particle_space):
    model = small_model(particle_space=particle_space)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    sampler_before, critic_before = parameters(model.actor), parameters(model.critic)
    model.learn(400, log_interval=1)
    with open(tmp_path / "progress.csv") as progress:
        last_row = list(csv.DictReader(progress))[-1]
    for key in LOGGED_KEYS:
        assert np.isfinite(float(last_row[key])), key
    # Updates after steps 101..399: SB3 dumps the episode's log before the update of step 400.
    assert float(last_row["train/n_updates"]) == 299
    assert float(last_row["train/ent_coef"]) == pytest.approx(0.1)
    assert not same(sampler_before, parameters(model.actor))
    assert not same(critic_before, parameters(model.critic))


def test_sampler_update_leaves_the_critic_untouched():
    model = small_model(learning_starts=200)
    model.learn(200)  # fills the buffer, no gradient step yet
    critic_step = model.critic.optimizer.step
    after_critic_step = {}

    def step_and_record(*args, **kwargs):
        result = critic_step(*args, **kwargs)
        after_critic_step["params"] = parameters(model.critic)
        after_critic_step["grads"] = [p.grad.clone() for p in model.critic.parameters()]
        return result

    model.critic.optimizer.step = step_and_record
    sampler_before = parameters(model.actor)
    model.train(gradient_steps=1, batch_size=32)
    assert same(after_critic_step["params"], parameters(model.critic))
    assert same(after_critic_step["grads"], [p.grad for p in model.critic.parameters()])
    assert not same(sampler_before, parameters(model.actor))


def test_target_changes_only_at_hard_copies():
    model = small_model(learning_starts=200, tau=1.0, target_update_interval=3)
    model.learn(200)
    assert same(parameters(model.critic), parameters(model.critic_target))  # copied at start
    for step in range(1, 8):
        target_before = parameters(model.critic_target)
        model.train(gradient_steps=1, batch_size=32)
        if step % 3 == 0:
            assert same(parameters(model.critic), parameters(model.critic_target))
        else:
            assert same(target_before, parameters(model.critic_target))
            assert not same(parameters(model.critic), parameters(model.critic_target))


def test_polyak_target_update():
    model = small_model(learning_starts=200, tau=0.5, target_update_interval=1)
    model.learn(200)
    target_before = parameters(model.critic_target)
    model.train(gradient_steps=1, batch_size=32)
    expected = [0.5 * old + 0.5 * new for old, new in zip(target_before, parameters(model.critic), strict=True)]
    for got, want in zip(parameters(model.critic_target), expected, strict=True):
        th.testing.assert_close(got, want)


def test_twin_critics_use_the_minimum():
    model = small_model(policy_kwargs={"net_arch": [16], "n_critics": 2})
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(4)]))
    actions = 2 * th.rand(4, 5, 1) - 1
    with th.no_grad():
        values = SVGDPolicy.particle_q_values(model.critic, obs, actions)
        each = [model.critic(obs.repeat_interleave(5, 0), actions.reshape(20, 1))[i].reshape(4, 5) for i in range(2)]
    assert values.shape == (4, 5)
    th.testing.assert_close(values, th.minimum(*each))
    assert not th.allclose(each[0], each[1])


def test_predict_deterministic_is_the_best_fixed_draw_by_q():
    model = small_model()
    obs = np.stack([model.observation_space.sample() for _ in range(5)])
    first, _ = model.predict(obs, deterministic=True)
    second, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(first, second)
    with th.no_grad():
        noise = deterministic_noise(32, 1)
        draws = th.tanh(model.actor.pre_tanh_from_noise(th.as_tensor(obs), noise))  # [5, 32, 1]
        q_values = SVGDPolicy.particle_q_values(model.critic, th.as_tensor(obs), draws)
        best = draws[th.arange(5), q_values.argmax(dim=1)]
        zero_noise = th.tanh(model.actor.pre_tanh_particles(th.as_tensor(obs), 1, deterministic=True)).squeeze(1)
    np.testing.assert_allclose(first, model.policy.unscale_action(best.numpy()), rtol=1e-6)
    th.testing.assert_close(draws[:, 0], zero_noise)
    model.policy.deterministic_n_particles = 1  # the sampler's output at xi = 0
    np.testing.assert_allclose(
        model.predict(obs, deterministic=True)[0], model.policy.unscale_action(zero_noise.numpy()), rtol=1e-6
    )
    stochastic = np.stack([model.predict(obs)[0] for _ in range(3)])
    assert not np.allclose(stochastic[0], stochastic[1])
    assert model.action_space.contains(stochastic[0][0])


def test_detached_particles_have_the_same_values_and_no_gradient():
    model = small_model()
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(5)]))
    th.manual_seed(1)
    all_with_gradient = model.actor.pre_tanh_particles(obs, 6)
    th.manual_seed(1)
    split = model.actor.pre_tanh_particles(obs, 6, n_detached=4)
    assert split.shape == (5, 6, 1)
    th.testing.assert_close(split, all_with_gradient)
    weight = next(model.actor.parameters())
    (from_updated,) = th.autograd.grad(split[:, 4:].sum(), weight, retain_graph=True)
    (from_all,) = th.autograd.grad(split.sum(), weight)
    th.testing.assert_close(from_all, from_updated)  # the detached particles add no gradient
    assert th.count_nonzero(from_updated) > 0


def test_save_load_round_trip(tmp_path):
    model = small_model()
    model.learn(300)
    model.save(tmp_path / "sql")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = SQL.load(tmp_path / "sql", env=gym.make("Pendulum-v1"))
    for key, value in model.policy.state_dict().items():
        assert th.equal(value, loaded.policy.state_dict()[key]), key
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert loaded.ent_coef == model.ent_coef and loaded.kernel_n_particles == model.kernel_n_particles
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert loaded.replay_buffer.size() == model.replay_buffer.size() == 300
    loaded.learn(150, reset_num_timesteps=False)  # keeps training after loading
    assert loaded.num_timesteps == 450


def test_progress_bar_and_tensorboard(tmp_path):
    model = small_model(tensorboard_log=str(tmp_path))
    model.learn(150, progress_bar=True)
    assert list(tmp_path.glob("SQL_1/events.out.tfevents.*"))


class ActionSpaceEnv(gym.Env):
    """An environment with the given action space (by default an unbounded Box)."""

    observation_space = spaces.Box(-1, 1, (2,))
    action_space = spaces.Box(-np.inf, np.inf, (2,))

    def __init__(self, action_space=None):
        if action_space is not None:
            self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def inverted_box():
    # Gymnasium refuses low > high at construction; a space edited afterwards still reaches SQL.
    space = spaces.Box(-1.0, 1.0, (2,))
    space.low[0] = 2.0
    return space


SUPPORTED = r"supported are a gymnasium.spaces.Box with finite bounds \(continuous actions\) and a gymnasium.spaces.Discrete"


@pytest.mark.parametrize(
    "env, message",
    [
        (ActionSpaceEnv(spaces.MultiDiscrete([2, 3])), r"the action space MultiDiscrete\(\[2 3\]\).*" + SUPPORTED),
        (ActionSpaceEnv(spaces.MultiBinary(3)), r"does not support the action space MultiBinary\(3\).*" + SUPPORTED),
        (ActionSpaceEnv(spaces.Tuple([spaces.Discrete(2)] * 2)), r"does not support the action space Tuple\(.*" + SUPPORTED),
        (ActionSpaceEnv(spaces.Discrete(3, start=1)), r"Discrete action space that starts at 0, got Discrete\(3, start=1\)"),
        (ActionSpaceEnv(), "bounded action space.*infinite bounds"),
        (ActionSpaceEnv(spaces.Box(np.float32([-1, 0]), np.float32([1, np.inf]))), "infinite bounds"),
        (ActionSpaceEnv(inverted_box()), r"low < high in every dimension.*low=\[ 2. -1.\], high=\[1. 1.\]"),
        (ActionSpaceEnv(spaces.Box(np.float32([0, 0]), np.float32([0, 1]))), r"low < high .*high=\[0. 1.\]"),
    ],
)
def test_unsupported_action_spaces_are_refused(env, message):
    with pytest.raises(ValueError, match=message):
        SQL("MlpPolicy", env)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kernel_n_particles": 2}, "kernel_n_particles .* at least 3"),
        ({"kernel_n_particles": 4, "kernel_update_ratio": 0.75}, "leaves 3 updated and 1 fixed"),
        ({"kernel_update_ratio": 0.0}, "leaves 0 updated"),
        ({"kernel_update_ratio": 1.0}, "0 fixed"),
        ({"kernel_n_particles": 3, "kernel_update_ratio": 0.3}, "leaves 0 updated"),
        ({"value_n_particles": 0}, "value_n_particles .* at least 1"),
        ({"ent_coef": 0.0}, "positive finite"),
        ({"ent_coef": -1.0}, "positive finite"),
        ({"ent_coef": "auto_-1"}, "auto_<init>. with a positive initial value"),
        ({"soft_double_q": True, "policy_kwargs": {"n_critics": 2}}, "soft_double_q needs discrete actions"),
        ({"particle_space": "latent"}, "particle_space must be one of"),
        ({"target_update_interval": 0}, "target_update_interval must be at least 1"),
        ({"kernel_update_ratio": float("nan")}, r"kernel_update_ratio must be a float in \(0, 1\), got nan"),
        ({"ent_coef": float("inf")}, "positive finite"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"buffer_size": 0}, "buffer_size must be at least 1"),
        ({"learning_rate": -1e-3}, "learning_rate must be a non-negative finite float or a schedule, got -0.001"),
        ({"learning_rate": float("nan")}, "learning_rate must be a non-negative finite float"),
        ({"gamma": 1.5}, r"gamma \(the discount factor\) must be in \[0, 1\]"),
        ({"tau": -0.1}, r"tau must be in \[0, 1\]"),
        ({"tau": 1.5}, r"tau must be in \[0, 1\]"),
        ({"use_sde": True}, "SQL has no gSDE.*policy is not a Gaussian.*raise ent_coef, or add action_noise"),
        ({"ent_coef": None}, "ent_coef .* must be a positive finite float, 'auto'.*got None.*ent_coef=0.1"),
        ({"ent_coef": "0.1"}, "ent_coef must be a positive float, 'auto' or 'auto_<init>'"),
        ({"target_entropy": float("nan")}, "target_entropy must be 'auto' or a finite float.*got nan"),
        ({"target_entropy": "high"}, "target_entropy must be 'auto' or a finite float.*got 'high'"),
        ({"kernel_n_particles": 16.0}, r"kernel_n_particles \(K\) must be an integer of at least 3, got 16.0"),
        ({"value_n_particles": 8.5}, r"value_n_particles \(M\) must be an integer of at least 1, got 8.5"),
        ({"kernel_n_particles": 10**6}, "kernel_n_particles=1000000 with batch_size=128: .* more than 2.15e"),
        ({"value_n_particles": 10**8}, "value_n_particles=100000000 with batch_size=128: .*fewer particles"),
        ({"buffer_size": 1e6}, "buffer_size must be at least 1, got 1000000.0: pass an integer"),
        ({"gradient_steps": 1.5}, "gradient_steps must be an integer"),
        ({"learning_starts": -1}, "learning_starts must be a number of steps >= 0"),
        ({"value_proposal_uniform_share": None}, "value_proposal_uniform_share"),
    ],
)
def test_invalid_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SQL("MlpPolicy", "Pendulum-v1", **kwargs)


def test_learn_refuses_a_negative_step_count():
    model = small_model()
    with pytest.raises(ValueError, match="total_timesteps must be a number of environment steps >= 0, got -5"):
        model.learn(-5)
    assert model.num_timesteps == 0
    model.learn(0)  # as in SB3: nothing to do
    model.learn(1e2)  # a float count, as SAC accepts
    assert model.num_timesteps == 100


def test_what_sac_accepts_is_accepted():
    # A batch larger than the buffer (sampled with replacement) and a frozen target (tau=0), as in SAC.
    model = SQL("MlpPolicy", "Pendulum-v1", batch_size=64, buffer_size=20, tau=0.0, learning_starts=10, seed=0)
    target_before = [parameter.clone() for parameter in model.critic_target.parameters()]
    model.learn(40)
    assert model.replay_buffer.full
    assert all(th.equal(before, after) for before, after in zip(target_before, model.critic_target.parameters(), strict=True))
    assert any(not th.equal(before, after) for before, after in zip(target_before, model.critic.parameters(), strict=True))
    # SAC's gSDE keywords with gSDE off are accepted and do nothing.
    SQL("MlpPolicy", "Pendulum-v1", use_sde=False, sde_sample_freq=4, use_sde_at_warmup=True)
    # NumPy numbers, a float step count, a target entropy as a string (SAC converts it with float()).
    SQL("MlpPolicy", "Pendulum-v1", batch_size=np.int64(32), ent_coef=np.float32(0.2), target_entropy="-1.5")
    SQL("MlpPolicy", "Pendulum-v1", learning_starts=100.0, target_update_interval=2.0, tau=1)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_reference_hyperparameters_apply_to_both_action_kinds(env_id):
    model = SQL("MlpPolicy", env_id, **REFERENCE_HYPERPARAMETERS)
    assert (model.tau, model.target_update_interval, model.learning_starts) == (1.0, 1000, 1000)
    assert (model.kernel_n_particles, model.kernel_bandwidth) == (16, "reference")
    assert model.particle_space == "post_tanh"  # the reference code's action-space particles
    # The reference code's initialisation: Glorot-uniform weights, zero biases, in every linear layer.
    layers = [layer for layer in model.policy.modules() if isinstance(layer, th.nn.Linear)]
    assert layers and all(th.count_nonzero(layer.bias) == 0 for layer in layers)
    for layer in layers:
        fan_out, fan_in = layer.weight.shape
        glorot_bound = (6 / (fan_in + fan_out)) ** 0.5  # PyTorch's default bound is 1 / sqrt(fan_in)
        assert 0.9 * glorot_bound <= layer.weight.abs().max() <= glorot_bound
    for key, value in model.critic.state_dict().items():
        assert th.equal(value, model.critic_target.state_dict()[key]), key
    if env_id == "Pendulum-v1":
        assert not model.actor.noise_skip  # the reference sampler: a = tanh(f(s, xi))
        assert SQL("MlpPolicy", env_id).actor.noise_skip  # the default: the noise added to the output
        assert model.policy.acting_n_candidates == 0  # the reference acts with one draw of the sampler
        assert SQL("MlpPolicy", env_id).policy.acting_n_candidates == 64  # the default: resampled actions
    model.learn(20)


def test_a_model_saved_before_resampled_acting_keeps_acting_with_the_sampler(tmp_path):
    model = SQL("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [16]})
    assert model.policy.acting_n_candidates == 64
    model.save(tmp_path / "new.zip")
    assert SQL.load(tmp_path / "new.zip").policy.acting_n_candidates == 64
    # An archive written before SQL gave new models acting_n_candidates=64 holds policy_kwargs without it.
    del model.policy_kwargs["acting_n_candidates"]
    model.save(tmp_path / "old.zip")
    assert SQL.load(tmp_path / "old.zip").policy.acting_n_candidates == 0


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_unknown_weight_init_is_refused(env_id):
    with pytest.raises(ValueError, match="weight_init must be one of"):
        SQL("MlpPolicy", env_id, policy_kwargs={"weight_init": "xavier"})


def test_rare_polyak_averaging_warns():
    with pytest.warns(UserWarning, match="tau=0.005 with target_update_interval=1000.*target_update_interval=1"):
        SQL("MlpPolicy", "Pendulum-v1", tau=0.005, target_update_interval=1000)


def test_unsupported_observation_spaces_are_refused():
    env = ActionSpaceEnv(spaces.Box(-1, 1, (2,)))
    env.observation_space = spaces.Tuple([spaces.Box(-1, 1, (2,)), spaces.Discrete(2)])
    with pytest.raises(NotImplementedError, match=r"Tuple\(.*observation space is not supported"):
        SQL("MlpPolicy", env)


def test_load_refuses_invalid_override(tmp_path):
    model = small_model()
    model.save(tmp_path / "sql")
    saved = (tmp_path / "sql.zip").read_bytes()
    for override, message in [
        ({"ent_coef": -1.0}, "positive finite"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            SQL.load(tmp_path / "sql", **override)
    assert (tmp_path / "sql.zip").read_bytes() == saved


def test_same_seed_same_result_on_cpu():
    # The seed sets the process-wide generators (SB3): build each model right before it learns.
    first, second, other_seed = (small_model(seed=seed).learn(250) for seed in (0, 0, 1))
    for key, value in first.policy.state_dict().items():
        assert th.equal(value, second.policy.state_dict()[key]), key
    np.testing.assert_array_equal(first.replay_buffer.actions, second.replay_buffer.actions)
    assert not same(parameters(first.actor), parameters(other_seed.actor))


def test_ent_coef_schedule_is_followed_and_logged(tmp_path):
    model = small_model(ent_coef=LogLinearSchedule(1.0, 0.01), learning_starts=50)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(400, log_interval=1)  # Pendulum episodes are 200 steps: logs at steps 200 and 400
    with open(tmp_path / "progress.csv") as progress:
        logged = [float(row["train/ent_coef"]) for row in csv.DictReader(progress)]
    # Logged before the update of the last step of each episode: progress remaining 1 - 199 / 400, 1 - 399 / 400.
    np.testing.assert_allclose(logged, [0.01 ** (199 / 400), 0.01 ** (399 / 400)], rtol=1e-5)


@pytest.mark.parametrize("schedule", [lambda progress: progress, lambda progress: float("nan")])
def test_ent_coef_schedule_must_stay_positive(schedule):
    with pytest.raises(ValueError, match=r"ent_coef schedule at progress_remaining=.* gives the temperature .*positive"):
        small_model(ent_coef=schedule)


@pytest.mark.parametrize("value", [-0.1, 0.0, float("nan"), None, "automatic"])
def test_assigned_temperature_is_checked(value):
    model = small_model(ent_coef=0.2)
    with pytest.raises(ValueError, match="ent_coef"):
        model.ent_coef = value
    assert model.ent_coef == 0.2
    model.ent_coef = 0.05  # a valid value takes effect at the next train() or predict()
    model.predict(model.observation_space.sample())
    assert model.policy.ent_coef == pytest.approx(0.05)


def negative_mid_run(progress_remaining):
    """Positive at progress 1 and 0 (the constructor's checks), negative in between."""
    return -0.1 if 0.4 < progress_remaining < 0.6 else 0.1


def test_a_schedule_negative_mid_run_stops_before_any_step_uses_it(tmp_path):
    model = small_model(ent_coef=negative_mid_run, learning_starts=50)
    with pytest.raises(ValueError, match=r"ent_coef schedule at progress_remaining=0.5975 gives the temperature -0.1"):
        model.learn(400)
    # The train() after step 161, the first at a negative value, stopped before its gradient step.
    assert (model.num_timesteps, model._n_updates) == (161, 161 - 50 - 1)
    assert model.policy.ent_coef == pytest.approx(0.1) and th.isfinite(model.policy.log_ent_coef).all()
    model.save(tmp_path / "stopped")
    loaded = SQL.load(tmp_path / "stopped")  # the schedule is saved and checks again
    assert th.isfinite(loaded.policy.log_ent_coef).all() and loaded.policy.ent_coef == pytest.approx(0.1)


def test_a_non_finite_learnt_temperature_is_refused_at_use(tmp_path):
    model = small_model(ent_coef="auto")
    model.policy.log_ent_coef.data.fill_(float("nan"))
    model.save(tmp_path / "nan_temperature")
    with pytest.raises(ValueError, match="holds a learnt temperature that cannot be used: the learnt log_ent_coef gives"):
        SQL.load(tmp_path / "nan_temperature")
    model.ent_coef = "auto"  # in memory, a learnt temperature is checked at each gradient step
    with pytest.raises(ValueError, match="the learnt log_ent_coef gives the temperature nan"):
        model.learn(200)
    assert model._n_updates == 0


def test_fine_tune_loads_onto_a_new_env_with_a_new_schedule(tmp_path):
    small_model().learn(150).save(tmp_path / "pretrained")
    schedule = LogLinearSchedule(0.5, 0.05)
    model = SQL.load(tmp_path / "pretrained", env=gym.make("Pendulum-v1", g=5.0), ent_coef=schedule)
    assert model.get_env().envs[0].unwrapped.g == 5.0
    model.learn(150)
    assert model.current_ent_coef() == pytest.approx(schedule(model._current_progress_remaining))
    model.save(tmp_path / "fine_tuned")
    assert SQL.load(tmp_path / "fine_tuned").ent_coef(0.0) == pytest.approx(0.05)
    model.set_env(gym.make("Pendulum-v1"))
    model.ent_coef = 0.2
    model.learn(120)
    assert model.logger.name_to_value["train/ent_coef"] == pytest.approx(0.2)


def hand_soft_target(model, replay_data, value_actions, alpha, discounts):
    """The continuous soft Bellman target computed one transition and one action at a time (Eq. 10, 11)."""
    action_dim = value_actions.shape[1]
    targets = []
    for index in range(replay_data.rewards.shape[0]):
        next_obs = replay_data.next_observations[index : index + 1]
        q_values = []
        for action in value_actions:
            q_per_critic = model.critic_target(next_obs, action.unsqueeze(0))
            q_values.append(min(float(q) for q in q_per_critic))
        log_mean_exp = np.log(np.mean(np.exp(np.array(q_values, dtype=np.float64) / alpha)))
        soft_value = alpha * (log_mean_exp + action_dim * np.log(2.0))
        not_done = 1.0 - float(replay_data.dones[index])
        targets.append(float(replay_data.rewards[index]) + not_done * float(discounts[index]) * soft_value)
    return np.array(targets)


def test_continuous_soft_target_matches_a_hand_computation():
    model = small_model(policy_kwargs={"net_arch": [8], "n_critics": 2}, value_n_particles=5, ent_coef=0.3)
    # Make the two target critics differ, so that the minimum matters.
    with th.no_grad():
        for parameter in model.critic_target.q_networks[1].parameters():
            parameter.add_(0.5 * th.randn_like(parameter))
    batch = 6
    generator = th.Generator().manual_seed(1)
    observations = th.randn(batch, 3, generator=generator)
    replay_data = ReplayBufferSamples(
        observations=observations,
        actions=th.rand(batch, 1, generator=generator) * 2 - 1,
        next_observations=observations + 1.0,  # the target must use these, not the current observations
        dones=th.tensor([[0.0], [1.0], [0.0], [0.0], [1.0], [0.0]]),
        rewards=th.randn(batch, 1, generator=generator),
        discounts=th.tensor([[0.99], [0.99], [0.9801], [0.970299], [0.9801], [0.99]]),  # n-step: gamma^k per transition
    )
    th.manual_seed(3)
    targets, _ = model.soft_q_target(replay_data, alpha=0.3)
    th.manual_seed(3)
    value_actions = 2.0 * th.rand(5, 1) - 1.0  # the same draw of the M uniform actions
    with th.no_grad():
        expected = hand_soft_target(model, replay_data, value_actions, 0.3, replay_data.discounts)
    np.testing.assert_allclose(targets.squeeze(-1).numpy(), expected, rtol=1e-5, atol=1e-5)
    # Without n-step discounts the buffer gives None and gamma is used.
    th.manual_seed(3)
    targets_gamma, _ = model.soft_q_target(replay_data._replace(discounts=None), alpha=0.3)
    with th.no_grad():
        expected_gamma = hand_soft_target(model, replay_data, value_actions, 0.3, [model.gamma] * batch)
    np.testing.assert_allclose(targets_gamma.squeeze(-1).numpy(), expected_gamma, rtol=1e-5, atol=1e-5)


def test_stein_target_is_taken_at_the_current_observations():
    model = small_model(learning_starts=40)
    model.learn(40)  # fills the buffer, no gradient step yet
    seen = []
    sampler_loss = model.sampler_loss

    def record(observations, alpha):
        seen.append(observations.clone())
        return sampler_loss(observations, alpha)

    model.sampler_loss = record
    sample = model.replay_buffer.sample
    drawn = []
    model.replay_buffer.sample = lambda *args, **kwargs: drawn.append(sample(*args, **kwargs)) or drawn[-1]
    model.train(gradient_steps=2, batch_size=8)
    assert len(seen) == 2
    for observations, replay_data in zip(seen, drawn, strict=True):
        assert th.equal(observations, replay_data.observations)
        assert not th.equal(observations, replay_data.next_observations)


class FixedEnergy(th.nn.Module):
    """A Q-network stand-in: ``q(a)`` of the action part of the critic's input ``[features, a]``."""

    def __init__(self, q):
        super().__init__()
        self.q = q

    def forward(self, q_input):
        return self.q(q_input[..., -1:])


def two_modes(actions):
    """log(0.7 N(a; -0.5, 0.15^2) + 0.3 N(a; 0.5, 0.15^2)) up to a constant, for actions [..., 1]."""
    components = th.cat(
        [np.log(0.7) - 0.5 * ((actions + 0.5) / 0.15) ** 2, np.log(0.3) - 0.5 * ((actions - 0.5) / 0.15) ** 2], -1
    )
    return th.logsumexp(components, dim=-1, keepdim=True)


def sampler_draws(q, steps, seed):
    """Train the sampler alone with SQL's sampler loss against the energy ``q`` (alpha 1), then draw 5000 actions."""
    model = SQL(
        "MlpPolicy",
        OneStateEnv(),
        ent_coef=1.0,
        seed=seed,
        learning_rate=1e-3,
        device="cpu",
        policy_kwargs={"net_arch": [64, 64]},
    )
    model.critic.q_networks = th.nn.ModuleList([FixedEnergy(q)])
    observations = th.zeros(16, 1)
    for _ in range(steps):
        loss, _, _ = model.sampler_loss(observations, 1.0)
        model.actor.optimizer.zero_grad()
        loss.backward()
        model.actor.optimizer.step()
    with th.no_grad():
        return model.actor.pre_tanh_particles(th.zeros(1, 1), 5000).tanh()[0, :, 0].numpy()


def test_sampler_loss_spreads_the_actions_uniformly_under_a_flat_energy():
    # exp(0 / alpha) is uniform on [-1, 1]: a tenth of the actions beyond |a| = 0.9. Without the tanh
    # Jacobian in log p(u) the pre-tanh particles drift apart and almost every action saturates.
    actions = sampler_draws(lambda a: 0.0 * a, steps=300, seed=0)
    assert 0.04 < np.mean(np.abs(actions) > 0.9) < 0.2
    assert 0.45 < actions.std() < 0.7  # the uniform's: 1 / sqrt(3) = 0.577


def test_sampler_loss_keeps_both_modes_with_their_weights():
    # 70% of the mass at -0.5 and 30% at 0.5. Without the kernel's repulsive term the particles
    # collapse onto one point.
    actions = sampler_draws(two_modes, steps=600, seed=1)
    assert abs(np.mean(actions < 0) - 0.7) < 0.1
    assert 0.12 < actions[actions < 0].std() < 0.25 and 0.35 < actions.std() < 0.6


def sampler_particle_gradient(sampler_kl_coef, particles):
    """Gradient of SQL's sampler loss with respect to given pre-tanh particles ``[1, K, 1]`` (energy -2 (a - 0.3)^2)."""
    n_particles = particles.shape[1]
    model = SQL(
        "MlpPolicy", OneStateEnv(), ent_coef=1.0, kernel_n_particles=n_particles, sampler_kl_coef=sampler_kl_coef, device="cpu"
    )
    model.critic.q_networks = th.nn.ModuleList([FixedEnergy(lambda a: -2.0 * (a - 0.3) ** 2)])
    leaf = particles.clone().requires_grad_(True)
    model.actor.pre_tanh_particles = lambda observations, n_particles, n_detached=0: leaf
    loss, _, _ = model.sampler_loss(th.zeros(1, 1), 1.0)
    (gradient,) = th.autograd.grad(loss, leaf)
    return gradient


def test_sampler_kl_term_adds_each_particles_own_score_and_the_entropy_gradient():
    # K = 4: fixed particles u = -0.6 and 0.4, updated 0.1 and 0.9. With weight w, the loss's gradient
    # at an updated particle gains -w (d/du log p(u) + D d/du sum_i log eps_i), where
    # log p(u) = q(tanh u) + log(1 - tanh^2 u) and eps_i is the distance to the second nearest
    # neighbour (the order used in one dimension).
    particles = th.tensor([[[-0.6], [0.4], [0.1], [0.9]]])
    without = sampler_particle_gradient(0.0, particles)
    with_term = sampler_particle_gradient(0.25, particles)
    assert th.equal(with_term[:, :2], without[:, :2])  # the fixed particles get nothing
    actions = th.tanh(particles[0, 2:, 0])
    own_score = -4.0 * (actions - 0.3) * (1 - actions**2) - 2 * actions
    # Second nearest neighbours: 0.1 -> -0.6 (fixed, 0.7; the nearest is 0.4), 0.9 -> 0.1 (updated,
    # 0.8; the nearest is 0.4). log|0.9 - 0.1| moves both updated particles.
    entropy_gradient = th.tensor([1 / (0.1 + 0.6) - 1 / (0.9 - 0.1), 1 / (0.9 - 0.1)])
    expected = -0.25 * (own_score + entropy_gradient)
    assert th.allclose(with_term[0, 2:, 0] - without[0, 2:, 0], expected, atol=1e-5)


@pytest.mark.parametrize("particle_space", ["pre_tanh", "post_tanh"])
def test_sampler_loss_leaves_the_critic_without_gradient(particle_space):
    # The critic is the energy: the sampler's step takes only input gradients from it, with or
    # without the KL term's own scores.
    model = SQL("MlpPolicy", "Pendulum-v1", sampler_kl_coef=0.01, particle_space=particle_space, seed=0)
    loss, _, _ = model.sampler_loss(th.zeros(8, 3, device=model.device), 1.0)
    loss.backward()
    assert all(p.grad is None for p in model.critic.parameters())
    assert all(p.grad is not None for p in model.actor.parameters())


def test_sampler_kl_coef_must_be_finite_and_not_negative():
    for value in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="sampler_kl_coef must be a finite float >= 0"):
            SQL("MlpPolicy", "Pendulum-v1", sampler_kl_coef=value)


@pytest.mark.parametrize("target_entropy, rises", [(5.0, True), (-20.0, False)])
def test_automatic_temperature_for_continuous_actions(tmp_path, target_entropy, rises):
    model = small_model(ent_coef="auto_0.1", target_entropy=target_entropy, learning_starts=50)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(250, log_interval=1)  # a Pendulum episode is 200 steps: one log row
    assert model.log_ent_coef is not None and model.ent_coef_optimizer is not None
    ent_coef = model.log_ent_coef.exp().item()
    assert (ent_coef > 0.1) == rises  # alpha rises when the entropy is below the target
    with open(tmp_path / "progress.csv") as progress:
        last_row = list(csv.DictReader(progress))[-1]
    assert np.isfinite(float(last_row["train/entropy"])) and np.isfinite(float(last_row["train/ent_coef_loss"]))
    # Saved and loaded, and still learnt after loading (SAC's surface).
    model.save(tmp_path / "auto")
    loaded = SQL.load(tmp_path / "auto", env=model.get_env())
    assert th.allclose(loaded.log_ent_coef, model.log_ent_coef)
    before = loaded.log_ent_coef.detach().clone()
    loaded.learn(20, reset_num_timesteps=False)
    assert not th.allclose(before, loaded.log_ent_coef)


def test_fixed_temperature_has_no_log_ent_coef_and_logs_the_entropy(tmp_path):
    model = small_model(learning_starts=50)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(250, log_interval=1)
    assert model.log_ent_coef is None and model.ent_coef_optimizer is None
    with open(tmp_path / "progress.csv") as progress:
        assert np.isfinite(float(list(csv.DictReader(progress))[-1]["train/entropy"]))


@pytest.mark.parametrize(
    "env, kwargs, reads_per_step, reads_per_call",
    [
        # the finite checks of the critic and the sampler; the logger's statistics
        ("Pendulum-v1", {}, 2, ["tolist"]),
        # and of the temperature; the learnt temperature's check before the first step
        ("Pendulum-v1", {"ent_coef": "auto"}, 3, ["tolist", "__float__"]),
        ("CartPole-v1", {"ent_coef": "auto"}, 2, ["tolist", "__float__"]),  # the critic and the temperature
    ],
)
def test_train_reads_from_the_device_once_per_check_and_once_per_call(
    monkeypatch, env, kwargs, reads_per_step, reads_per_call
):
    model = SQL("MlpPolicy", env, learning_starts=64, batch_size=16, seed=0, policy_kwargs={"net_arch": [16]}, **kwargs)
    model.learn(64)
    reads = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy"):
        original = getattr(th.Tensor, name)

        def counted(tensor, *args, _name=name, _original=original, **kwargs):
            # PyTorch's optimizers read their step counts, host tensors unless capturable: not a device read.
            if "torch/optim" not in sys._getframe(1).f_code.co_filename:
                reads.append(_name)
            return _original(tensor, *args, **kwargs)

        monkeypatch.setattr(th.Tensor, name, counted)
    model.train(gradient_steps=5, batch_size=16)
    monkeypatch.undo()
    assert sorted(reads) == sorted(["__bool__"] * (5 * reads_per_step) + reads_per_call)
    assert np.isfinite(model.logger.name_to_value["train/critic_loss"])


def test_a_learnt_temperature_used_as_a_tensor_gives_the_numbers_of_its_float():
    model = small_model(ent_coef="auto_0.3", learning_starts=50)
    model.learn(60)
    replay_data = model.replay_buffer.sample(32)
    alpha = model.log_ent_coef.detach().exp()  # what train() uses, shape [1]
    results = []
    for temperature in (alpha, float(alpha)):
        th.manual_seed(0)
        target, soft_value = model.soft_q_target(replay_data, temperature)
        actor_loss, kernel, pre_tanh = model.sampler_loss(replay_data.observations, temperature)
        results.append((target, soft_value, actor_loss, kernel.values, pre_tanh))
    for from_tensor, from_float in zip(*results, strict=True):
        th.testing.assert_close(from_tensor.detach(), from_float.detach(), rtol=1e-6, atol=1e-6)
    assert results[0][0].shape == (32, 1) and results[0][2].shape == ()


@pytest.mark.parametrize("ent_coef, estimates_per_step", [(0.1, 0), ("auto", 1)])
def test_sampler_entropy_is_estimated_every_step_only_for_a_learnt_temperature(
    monkeypatch, tmp_path, ent_coef, estimates_per_step
):
    import sb3_sql.sql as sql_module

    model = small_model(ent_coef=ent_coef, learning_starts=50)
    model.learn(60)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    estimates = []
    estimate = sql_module.kozachenko_leonenko_entropy
    monkeypatch.setattr(
        sql_module, "kozachenko_leonenko_entropy", lambda actions: estimates.append(actions) or estimate(actions)
    )
    model.train(gradient_steps=5, batch_size=32)
    assert len(estimates) == 5 * estimates_per_step
    if estimates_per_step == 0:
        # Estimated once, when the log is written, from the last step's particles.
        kept = model._logged_sampler_actions
        assert kept is not None and kept.shape == (32, model.kernel_n_particles, 1)
        model.dump_logs()
        assert len(estimates) == 1 and estimates[0] is kept
        assert model._logged_sampler_actions is None
        with open(tmp_path / "progress.csv") as progress:
            logged = float(list(csv.DictReader(progress))[-1]["train/entropy"])
        assert logged == pytest.approx(estimate(kept).mean().item(), rel=1e-6)


def test_kept_particles_are_not_saved(tmp_path):
    model = small_model(learning_starts=50)
    model.learn(60)
    assert model._logged_sampler_actions is not None
    model.save(tmp_path / "model")
    assert "_logged_sampler_actions" not in SQL.load(tmp_path / "model").__dict__

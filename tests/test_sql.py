import csv

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.logger import configure

from sb3_sql import SQL, LogLinearSchedule, SVGDPolicy

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
    kwargs = {"learning_starts": 100, "batch_size": 32, "seed": 0, "policy_kwargs": {"net_arch": [32, 32]}, **kwargs}
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
    model = small_model(learning_starts=200, target_update_interval=3)
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


def test_predict_deterministic_is_the_zero_noise_sample():
    model = small_model()
    obs = np.stack([model.observation_space.sample() for _ in range(5)])
    first, _ = model.predict(obs, deterministic=True)
    second, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(first, second)
    with th.no_grad():
        zero_noise = th.tanh(model.actor.pre_tanh_particles(th.as_tensor(obs), 1, deterministic=True)).squeeze(1)
    np.testing.assert_allclose(first, model.policy.unscale_action(zero_noise.numpy()), rtol=1e-6)
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
        ({"kernel_n_particles": 1}, "kernel_n_particles .* at least 2"),
        ({"kernel_update_ratio": 0.0}, "leaves 0 updated"),
        ({"kernel_update_ratio": 1.0}, "0 fixed"),
        ({"kernel_n_particles": 2, "kernel_update_ratio": 0.4}, "leaves 0 updated"),
        ({"value_n_particles": 0}, "value_n_particles .* at least 1"),
        ({"ent_coef": 0.0}, "positive finite"),
        ({"ent_coef": -1.0}, "positive finite"),
        ({"ent_coef": "auto"}, "not supported for continuous actions"),
        ({"soft_double_q": True, "policy_kwargs": {"n_critics": 2}}, "soft_double_q needs discrete actions"),
        ({"particle_space": "latent"}, "particle_space must be one of"),
        ({"target_update_interval": 0}, "target_update_interval must be at least 1"),
        ({"kernel_update_ratio": float("nan")}, r"kernel_update_ratio must be a float in \(0, 1\), got nan"),
        ({"ent_coef": float("inf")}, "positive finite"),
        ({"batch_size": 200, "buffer_size": 100}, "batch_size=200 must be between 1 and buffer_size=100"),
        ({"batch_size": 0}, "batch_size=0 must be between 1"),
        ({"buffer_size": 0}, "buffer_size must be at least 1"),
        ({"learning_rate": -1e-3}, "learning_rate must be a non-negative finite float or a schedule, got -0.001"),
        ({"learning_rate": float("nan")}, "learning_rate must be a non-negative finite float"),
        ({"gamma": 1.5}, r"gamma \(the discount factor\) must be in \[0, 1\]"),
        ({"tau": 0.0}, r"tau must be in \(0, 1\]"),
    ],
)
def test_invalid_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SQL("MlpPolicy", "Pendulum-v1", **kwargs)


def test_unsupported_observation_spaces_are_refused():
    env = ActionSpaceEnv(spaces.Box(-1, 1, (2,)))
    env.observation_space = spaces.Tuple([spaces.Box(-1, 1, (2,)), spaces.Discrete(2)])
    with pytest.raises(NotImplementedError, match=r"Tuple\(.*observation space is not supported"):
        SQL("MlpPolicy", env)


def test_load_refuses_invalid_override(tmp_path):
    model = small_model()
    model.save(tmp_path / "sql")
    saved = (tmp_path / "sql.zip").read_bytes()
    for override, message in [({"ent_coef": -1.0}, "positive finite"), ({"batch_size": 10**9}, "batch_size=1000000000")]:
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
    with pytest.raises(ValueError, match="the ent_coef schedule must return a positive finite temperature"):
        small_model(ent_coef=schedule)


def test_fine_tune_loads_onto_a_new_env_with_a_new_schedule(tmp_path):
    small_model().learn(150).save(tmp_path / "pretrained")
    schedule = LogLinearSchedule(0.5, 0.05)
    model = SQL.load(tmp_path / "pretrained", env=gym.make("Pendulum-v1", g=5.0), ent_coef=schedule)
    assert model.get_env().envs[0].unwrapped.g == 5.0
    model.learn(150)
    assert model._current_ent_coef() == pytest.approx(schedule(model._current_progress_remaining))
    model.save(tmp_path / "fine_tuned")
    assert SQL.load(tmp_path / "fine_tuned").ent_coef(0.0) == pytest.approx(0.05)
    model.set_env(gym.make("Pendulum-v1"))
    model.ent_coef = 0.2
    model.learn(120)
    assert model.logger.name_to_value["train/ent_coef"] == pytest.approx(0.2)

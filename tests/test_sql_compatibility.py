"""SQL as a drop-in for SAC / DQN: policy aliases x action kinds x vector envs, and the SB3 features SAC users rely on."""

from functools import partial

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import BitFlippingEnv, FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

from sb3_sql import (
    SQL,
    CnnSoftQPolicy,
    CnnSVGDPolicy,
    MultiInputSoftQPolicy,
    MultiInputSVGDPolicy,
    SoftQPolicy,
    SVGDPolicy,
)

POLICY_CLASSES = {
    ("continuous", "MlpPolicy"): SVGDPolicy,
    ("continuous", "CnnPolicy"): CnnSVGDPolicy,
    ("continuous", "MultiInputPolicy"): MultiInputSVGDPolicy,
    ("discrete", "MlpPolicy"): SoftQPolicy,
    ("discrete", "CnnPolicy"): CnnSoftQPolicy,
    ("discrete", "MultiInputPolicy"): MultiInputSoftQPolicy,
}
MLP_ENV_IDS = {"continuous": "Pendulum-v1", "discrete": "CartPole-v1"}


def make_env(kind: str, alias: str) -> gym.Env:
    discrete = kind == "discrete"
    if alias == "CnnPolicy":
        return FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=discrete)
    if alias == "MultiInputPolicy":
        return SimpleMultiObsEnv(discrete_actions=discrete)
    return gym.make(MLP_ENV_IDS[kind])


def tiny_policy_kwargs(alias: str) -> dict:
    if alias == "MlpPolicy":
        return {"net_arch": [16]}
    output_dim = "cnn_output_dim" if alias == "MultiInputPolicy" else "features_dim"
    return {"net_arch": [16], "features_extractor_kwargs": {output_dim: 16}}


def observations(model: SQL, n: int):
    samples = [model.observation_space.sample() for _ in range(n)]
    if isinstance(model.observation_space, spaces.Dict):
        return {key: np.stack([sample[key] for sample in samples]) for key in model.observation_space.spaces}
    return np.stack(samples)


@pytest.mark.parametrize("vec_env_cls", [DummyVecEnv, SubprocVecEnv])
@pytest.mark.parametrize("alias", ["MlpPolicy", "CnnPolicy", "MultiInputPolicy"])
@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_policy_alias_x_action_kind_x_vec_env(tiny_model, tmp_path, kind, alias, vec_env_cls):
    vec_env_kwargs = {"start_method": "fork"} if vec_env_cls is SubprocVecEnv else None
    env = make_vec_env(partial(make_env, kind, alias), n_envs=2, vec_env_cls=vec_env_cls, vec_env_kwargs=vec_env_kwargs)
    model = tiny_model(env, alias, policy_kwargs=tiny_policy_kwargs(alias))
    assert type(model.policy) is POLICY_CLASSES[kind, alias]
    model.learn(100)
    assert model.num_timesteps == 100 and model._n_updates == 25  # 2 envs: one update per 2 steps after 50

    model.save(tmp_path / "sql")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = SQL.load(tmp_path / "sql", env=env)
    assert type(loaded.policy) is POLICY_CLASSES[kind, alias]
    obs = observations(model, 4)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert loaded.replay_buffer.size() == model.replay_buffer.size() == 50
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded.num_timesteps == 120
    env.close()


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_features_extractor_and_target(tiny_model, kind):
    model = tiny_model(make_env(kind, "CnnPolicy"), "CnnPolicy", policy_kwargs=tiny_policy_kwargs("CnnPolicy"))
    # The target never shares the critic's features extractor (as in SAC).
    assert model.critic_target.features_extractor is not model.critic.features_extractor
    for critic, target in zip(model.critic.parameters(), model.critic_target.parameters(), strict=True):
        assert th.equal(critic, target) and critic is not target
    if kind == "continuous":
        assert model.actor.features_extractor is not model.critic.features_extractor
        policy_kwargs = {**tiny_policy_kwargs("CnnPolicy"), "share_features_extractor": True}
        shared = tiny_model(make_env(kind, "CnnPolicy"), "CnnPolicy", policy_kwargs=policy_kwargs)
        assert shared.actor.features_extractor is shared.critic.features_extractor
        # The shared extractor is trained by the sampler loss only, as in SAC.
        critic_optimized = {id(p) for group in shared.critic.optimizer.param_groups for p in group["params"]}
        assert not critic_optimized & {id(p) for p in shared.critic.features_extractor.parameters()}


@pytest.mark.parametrize("continuous", [True, False])
def test_her_on_bit_flipping(tiny_model, tmp_path, continuous):
    env = BitFlippingEnv(n_bits=4, continuous=continuous, max_steps=4)
    model = tiny_model(
        env,
        "MultiInputPolicy",
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={"n_sampled_goal": 2, "goal_selection_strategy": "future"},
    )
    model.learn(100)
    assert isinstance(model.replay_buffer, HerReplayBuffer) and model._n_updates == 50
    # Relabelled goals: the sampled rewards are those of the sampled goals, not of the episode's goal.
    batch = model.replay_buffer.sample(200)
    achieved = batch.next_observations["achieved_goal"].cpu().numpy()
    desired = batch.observations["desired_goal"].cpu().numpy()
    np.testing.assert_array_equal(batch.rewards.cpu().numpy().ravel(), env.compute_reward(achieved, desired, None))
    model.save_replay_buffer(tmp_path / "buffer")
    size = model.replay_buffer.size()
    model.replay_buffer = None
    model.load_replay_buffer(tmp_path / "buffer")  # a HER buffer needs the model's env to reload
    assert isinstance(model.replay_buffer, HerReplayBuffer) and model.replay_buffer.size() == size


def test_her_on_a_goal_conditioned_mujoco_task(tiny_model):
    gymnasium_robotics = pytest.importorskip("gymnasium_robotics")
    gym.register_envs(gymnasium_robotics)
    env = gym.make("PointMaze_UMaze-v3", max_episode_steps=20)
    model = tiny_model(env, "MultiInputPolicy", replay_buffer_class=HerReplayBuffer)
    model.learn(100)
    assert isinstance(model.replay_buffer, HerReplayBuffer) and model._n_updates == 50
    batch = model.replay_buffer.sample(200)
    achieved = batch.next_observations["achieved_goal"].numpy()
    desired = batch.observations["desired_goal"].numpy()
    np.testing.assert_allclose(batch.rewards.numpy().ravel(), env.unwrapped.compute_reward(achieved, desired, None))


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_vec_normalize(tiny_model, kind):
    env = VecNormalize(make_vec_env(MLP_ENV_IDS[kind], n_envs=2))
    model = tiny_model(env)
    sample = model.replay_buffer.sample
    calls = []
    model.replay_buffer.sample = lambda *args, **kwargs: calls.append(kwargs.get("env")) or sample(*args, **kwargs)
    model.learn(100)
    assert model.get_vec_normalize_env() is env and env.obs_rms.count > 100
    assert calls and all(call is env for call in calls)  # minibatches are normalised with the current statistics


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_train_freq_in_episodes(tiny_model, kind):
    model = tiny_model(MLP_ENV_IDS[kind], learning_starts=0, train_freq=(1, "episode"), gradient_steps=1)
    model.learn(400)
    assert 2 <= model._n_updates == len(model.ep_info_buffer) < model.num_timesteps / 5


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_gradient_steps_as_many_as_env_steps(tiny_model, kind):
    model = tiny_model(MLP_ENV_IDS[kind], learning_starts=52, train_freq=4, gradient_steps=-1)
    model.learn(200)
    assert model._n_updates == 200 - 52


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_n_step_returns(tiny_model, kind):
    model = tiny_model(MLP_ENV_IDS[kind], n_steps=3)
    model.learn(100)
    assert isinstance(model.replay_buffer, NStepReplayBuffer) and model._n_updates == 50
    discounts = model.replay_buffer.sample(64).discounts
    assert th.all(discounts <= 0.99) and th.any(th.isclose(discounts, th.tensor(0.99**3)))


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_optimize_memory_usage(tiny_model, kind):
    replay_buffer_kwargs = {"handle_timeout_termination": False}
    model = tiny_model(MLP_ENV_IDS[kind], optimize_memory_usage=True, replay_buffer_kwargs=replay_buffer_kwargs)
    model.learn(100)
    assert model.replay_buffer.optimize_memory_usage and not hasattr(model.replay_buffer, "next_observations")
    assert model._n_updates == 50


class CountingNoise(ActionNoise):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return np.full(1, 0.1)


def test_action_noise_is_added_to_continuous_actions(tiny_model):
    noise = CountingNoise()
    model = tiny_model(MLP_ENV_IDS["continuous"], action_noise=noise)
    model.learn(100)
    assert noise.calls == 100


@pytest.mark.parametrize("kind, ent_coef", [("continuous", 0.1), ("discrete", "auto")])
def test_learning_rate_schedule(tiny_model, kind, ent_coef):
    def schedule(progress_remaining):
        return 1e-3 * progress_remaining

    model = tiny_model(MLP_ENV_IDS[kind], learning_rate=schedule, ent_coef=ent_coef)
    model.learn(100)
    optimizers = [model.critic.optimizer, model.actor.optimizer if kind == "continuous" else model.ent_coef_optimizer]
    expected = schedule(model._current_progress_remaining)
    assert expected < 1e-3
    for optimizer in optimizers:
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_set_env(tiny_model, kind):
    model = tiny_model(MLP_ENV_IDS[kind])
    model.learn(60)
    new_env = make_vec_env(MLP_ENV_IDS[kind], n_envs=1)
    model.set_env(new_env)
    model.learn(40, reset_num_timesteps=False)
    assert model.get_env() is new_env and model.num_timesteps == 100 and model._n_updates == 50
    other = "CartPole-v1" if kind == "continuous" else "Pendulum-v1"
    with pytest.raises(ValueError, match="spaces do not match"):
        model.set_env(make_vec_env(other, n_envs=1))


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_get_and_set_parameters(tiny_model, kind):
    model, other = tiny_model(MLP_ENV_IDS[kind]), tiny_model(MLP_ENV_IDS[kind], seed=1)
    model.learn(60)
    parameters = model.get_parameters()
    assert {"policy", "critic.optimizer"} <= set(parameters)
    obs = observations(model, 16)
    assert not np.array_equal(model.predict(obs, deterministic=True)[0], other.predict(obs, deterministic=True)[0])
    other.set_parameters(parameters)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], other.predict(obs, deterministic=True)[0])


def test_evaluate_policy(tiny_model):
    discrete = tiny_model(MLP_ENV_IDS["discrete"])
    rewards, lengths = evaluate_policy(discrete, gym.make("CartPole-v1"), n_eval_episodes=3, return_episode_rewards=True)
    assert len(rewards) == len(lengths) == 3
    np.testing.assert_array_equal(rewards, lengths)  # CartPole: reward 1 per step
    continuous = tiny_model(MLP_ENV_IDS["continuous"])
    vec_env = make_vec_env("Pendulum-v1", n_envs=2)
    rewards, lengths = evaluate_policy(continuous, vec_env, n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == [200, 200] and all(reward < 0 for reward in rewards)


class SubclassedBox(spaces.Box):
    pass


class SubclassedDiscrete(spaces.Discrete):
    pass


class SubclassedSpacesEnv(gym.Env):
    def __init__(self, discrete: bool):
        self.observation_space = SubclassedBox(-1, 1, (3,), dtype=np.float32)
        self.action_space = SubclassedDiscrete(3) if discrete else SubclassedBox(-2, 2, (2,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(action)
        return self.observation_space.sample(), float(np.sum(action)), False, False, {}


@pytest.mark.parametrize("discrete", [False, True])
def test_subclassed_spaces(tiny_model, discrete):
    env = SubclassedSpacesEnv(discrete)
    check_env(env)
    model = tiny_model(env)
    assert isinstance(model.policy, SoftQPolicy if discrete else SVGDPolicy)
    model.learn(100)
    assert model._n_updates == 50
    assert env.action_space.contains(model.predict(env.observation_space.sample())[0])

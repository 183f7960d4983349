import hashlib
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from gymnasium.wrappers import TransformObservation, TransformReward
from stable_baselines3 import SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan

from sb3_sql import SQL

from test_sql import parameters, same


class TwoActionPendulum(gym.Env):
    observation_space = gym.make("Pendulum-v1").observation_space
    action_space = spaces.Box(-2, 2, (2,))

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def pendulum_with_reward(transform):
    return TransformReward(gym.make("Pendulum-v1"), transform)


def replaced_after(n_steps, value):
    counter = {"steps": 0}

    def transform(reward):
        counter["steps"] += 1
        return value if counter["steps"] > n_steps else reward

    return transform


def collect_then_fail(model, expected_message):
    """Fill the buffer, then one gradient step must raise before any optimizer step."""
    model.learn(model.learning_starts)
    before = parameters(model.policy)
    with pytest.raises(FloatingPointError, match=expected_message):
        model.train(gradient_steps=1, batch_size=model.batch_size)
    return before


@pytest.mark.parametrize(
    "kwargs, env",
    [
        ({"ent_coef": 1e-40}, "Pendulum-v1"),  # Q / alpha overflows float32
        ({"ent_coef": 1e30}, "Pendulum-v1"),  # the soft value alpha * D * log 2 squared overflows
        ({}, pendulum_with_reward(lambda reward: 1e30 * reward)),
    ],
)
def test_non_finite_critic_loss_stops_before_any_update_and_the_model_saves(tiny_model, tmp_path, kwargs, env):
    model = tiny_model(env, **kwargs)
    before = collect_then_fail(model, r"before the critic optimizer step: the critic loss is inf.*temperature ent_coef")
    assert same(before, parameters(model.policy))
    model.save(tmp_path / "last_good")
    loaded = SQL.load(tmp_path / "last_good")
    for got, want in zip(parameters(loaded.policy), before, strict=True):
        assert th.isfinite(got).all()
        assert th.equal(got, want)


@pytest.mark.parametrize("network", ["critic", "actor"])
def test_non_finite_gradients_with_a_finite_loss_are_refused(tiny_model, network):
    model = tiny_model("Pendulum-v1")
    model.learn(100)
    module = getattr(model, network)
    before = parameters(module)
    next(module.parameters()).register_hook(lambda grad: grad * float("inf"))
    name = "critic" if network == "critic" else "sampler"
    with pytest.raises(FloatingPointError, match=f"before the {name} optimizer step: the {name} gradients are not finite"):
        model.train(gradient_steps=1, batch_size=32)
    assert same(before, parameters(module))


def test_nan_reward_is_named_in_the_error(tiny_model):
    model = tiny_model(pendulum_with_reward(replaced_after(100, float("nan"))), learning_starts=160)
    before = collect_then_fail(model, "critic loss is nan.*sampled rewards contain NaN or Inf.*VecCheckNan")
    assert same(before, parameters(model.policy))


def test_nan_observation_is_named_in_the_error(tiny_model):
    env = TransformObservation(gym.make("Pendulum-v1"), lambda obs: obs * np.nan, gym.make("Pendulum-v1").observation_space)
    model = tiny_model(env)
    collect_then_fail(model, "critic loss is nan.*sampled observations contain NaN or Inf.*VecCheckNan")


def test_vec_check_nan_stops_at_the_faulty_step(tiny_model):
    env = VecCheckNan(DummyVecEnv([lambda: pendulum_with_reward(replaced_after(150, float("inf")))]), raise_exception=True)
    model = tiny_model(env)
    with pytest.raises(ValueError, match="found inf in rewards"):
        model.learn(300)
    assert model.num_timesteps == 150  # the 151st step raised before it was counted or stored
    assert model.replay_buffer.size() == 150 and np.isfinite(model.replay_buffer.rewards[:150]).all()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def saved_model(tiny_model, tmp_path):
    # Larger networks than the tiny default: the first half of the archive then holds all of
    # policy.pth (a zip file itself), so the "truncated" file still opens as a zip with members missing.
    model = tiny_model(policy_kwargs={"net_arch": [32, 32]})
    model.save(tmp_path / "sql.zip")
    return model, tmp_path / "sql.zip"


def truncated(source, target):
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])


def zip_of_text(source, target):
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("notes.txt", "not a model")


def text_file(source, target):
    target.write_text("not a model")


def flipped_byte(source, target):
    # Corrupt the stored policy weights without breaking the zip structure.
    with zipfile.ZipFile(source) as archive:
        offset = archive.getinfo("policy.pth").header_offset + 200
    content = bytearray(source.read_bytes())
    content[offset] ^= 0xFF
    target.write_bytes(bytes(content))


@pytest.mark.parametrize(
    "make_file, message",
    [
        (text_file, "is not a Stable-Baselines3 model archive .not a zip file, or truncated"),
        (truncated, "is not a complete Stable-Baselines3 model archive .truncated"),
        (zip_of_text, r"lacks the members \['data', 'policy.pth'\]"),
        (flipped_byte, "is corrupted: its member 'policy.pth' fails the CRC check"),
    ],
)
def test_bad_files_are_refused_and_left_unchanged(saved_model, make_file, message):
    model, path = saved_model
    bad = path.with_name("bad.zip")
    make_file(path, bad)
    model_before, bad_before, good_before = parameters(model.policy), digest(bad), digest(path)
    with pytest.raises(ValueError, match=message):
        SQL.load(bad)
    assert digest(bad) == bad_before and digest(path) == good_before
    assert same(model_before, parameters(model.policy))


def test_missing_file_is_named_and_zip_is_appended_as_in_sb3(saved_model):
    model, path = saved_model
    with pytest.raises(FileNotFoundError, match=r"No model file at .*missing\.zip"):
        SQL.load(path.with_name("missing"))
    (path.parent / "sql.v1.zip").write_bytes(path.read_bytes())
    loaded = SQL.load(path.parent / "sql.v1")  # SB3 appends .zip to a path that does not exist
    assert same(parameters(loaded.policy), parameters(model.policy))


def test_sac_archive_is_refused_and_left_unchanged(tmp_path):
    SAC("MlpPolicy", "Pendulum-v1", learning_starts=0).save(tmp_path / "sac.zip")
    before = digest(tmp_path / "sac.zip")
    message = r"SACPolicy.* does not fit the action space .*subclass of SVGDPolicy.*saved by another algorithm"
    with pytest.raises(ValueError, match=message):
        SQL.load(tmp_path / "sac.zip")
    assert digest(tmp_path / "sac.zip") == before
    SAC.load(tmp_path / "sac.zip")  # still a good SAC model


@pytest.mark.parametrize(
    "make_env, message",
    [
        (lambda: gym.make("MountainCarContinuous-v0"), "Observation spaces do not match"),
        (TwoActionPendulum, "Action spaces do not match"),
    ],
)
def test_env_with_other_spaces_is_refused_and_the_model_is_unchanged(saved_model, make_env, message):
    model, path = saved_model
    env = make_env()
    file_before, model_before = digest(path), parameters(model.policy)
    with pytest.raises(ValueError, match=message):
        SQL.load(path, env=env)
    with pytest.raises(ValueError, match=message):
        model.set_env(env)
    assert digest(path) == file_before and same(model_before, parameters(model.policy))
    assert model.observation_space == gym.make("Pendulum-v1").observation_space
    assert model.get_env().envs[0].unwrapped.spec.id == "Pendulum-v1"

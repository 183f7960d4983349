import base64
import contextlib
import hashlib
import io
import json
import pickle
import zipfile

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import torch as th
from conftest import TINY_KWARGS
from gymnasium import spaces
from gymnasium.wrappers import TransformObservation, TransformReward
from stable_baselines3 import SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecNormalize

from sb3_sql import SQL
from sb3_sql.checks import check_transitions

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


@pytest.mark.parametrize(
    "field, message",
    [
        ("rewards", r"critic loss is nan.*sampled rewards contain NaN or Inf.*VecCheckNan"),
        ("observations", r"critic loss is nan.*sampled observations contain NaN or Inf"),
    ],
)
def test_nan_in_the_buffer_is_named_in_the_error(tiny_model, field, message):
    # Transitions are checked before they are stored; a buffer filled otherwise (loaded, written to) still is.
    model = tiny_model("Pendulum-v1")
    model.learn(model.learning_starts)
    getattr(model.replay_buffer, field)[:] = np.nan
    with pytest.raises(FloatingPointError, match=message):
        model.train(gradient_steps=1, batch_size=model.batch_size)


def observations_after(n_steps, transform):
    """Pendulum whose observations pass through ``transform`` from its ``n_steps + 1``-th step on."""
    counter = {"steps": 0}

    def observation(obs):
        counter["steps"] += 1
        return transform(obs) if counter["steps"] > n_steps + 1 else obs  # the reset is the first call

    base = gym.make("Pendulum-v1")
    return TransformObservation(base, observation, spaces.Box(-np.inf, np.inf, (3,), np.float32))


@pytest.mark.parametrize(
    "env, quantity",
    [
        (lambda: pendulum_with_reward(replaced_after(150, float("nan"))), r"the reward of environments \[0\] is not finite"),
        (lambda: pendulum_with_reward(replaced_after(150, float("-inf"))), r"the reward of environments \[0\] is not finite"),
        (lambda: observations_after(150, lambda obs: obs * np.nan), r"the next observation of environments \[0\] contains"),
        (lambda: observations_after(150, lambda obs: obs * np.inf), r"the next observation of environments \[0\] contains"),
    ],
)
def test_non_finite_transitions_never_enter_the_buffer(tiny_model, env, quantity):
    model = tiny_model(env())
    with pytest.raises(ValueError, match=f"refused the transition of env step 151 before storing it: {quantity}"):
        model.learn(300)
    assert model.replay_buffer.size() == 150
    for name in ("observations", "next_observations", "rewards"):
        assert np.isfinite(getattr(model.replay_buffer, name)).all(), name
    assert np.isfinite(model._last_obs).all()
    model.train(gradient_steps=5, batch_size=16)  # the buffer stays usable: no FloatingPointError


def test_non_finite_transitions_are_refused_with_vec_normalize(tiny_model):
    # VecNormalize clips the observations it returns; the buffer stores the originals, which are checked.
    env = VecNormalize(DummyVecEnv([lambda: observations_after(80, lambda obs: obs * np.inf)]))
    model = tiny_model(env)
    with pytest.raises(ValueError, match=r"env step 81 .*the next observation of environments"):
        model.learn(200)
    assert model.replay_buffer.size() == 80 and np.isfinite(model.replay_buffer.next_observations).all()


def test_an_observation_of_another_shape_is_refused_before_the_buffer(tiny_model):
    env = observations_after(120, lambda obs: obs[:1])  # (3,) -> (1,): DummyVecEnv would broadcast it
    model = tiny_model(env)
    with pytest.raises(ValueError, match=r"step\(\) number 121 .*observation of shape \(1,\).*has the shape \(3,\)"):
        model.learn(300)
    assert model.replay_buffer.size() == 120
    # VecEnvs that stack the observations (SubprocVecEnv) are checked before the buffer as well.
    space = spaces.Box(-1, 1, (3,))
    with pytest.raises(ValueError, match=r"env step 7 before storing it: the next observation has the shape \(1,\)"):
        check_transitions(space, 7, np.zeros((2, 3)), np.zeros((2, 1)), np.zeros(2), terminal_observations={})
    with pytest.raises(ValueError, match=r"the terminal observation of environment 1 has the shape \(1,\)"):
        check_transitions(space, 7, np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(2), {1: np.zeros(1)})


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


def test_huge_observations_are_named_not_the_temperature(tiny_model):
    env = observations_after(0, lambda obs: obs * np.float32(1e20))
    model = tiny_model(env)
    with pytest.raises(FloatingPointError, match=r"Likely cause: the sampled observations reach \|[0-9.]+e\+20\|.*Normalize"):
        model.learn(200)


def test_a_learning_rate_too_large_is_named_not_the_temperature():
    # Measured: the default networks overflow at the second gradient step (step 102).
    model = SQL("MlpPolicy", "Pendulum-v1", learning_rate=1e6, seed=0)
    with pytest.raises(FloatingPointError, match=r"the critic parameters reach \|[0-9.e+]+\|.*Lower learning_rate"):
        model.learn(300)


def test_a_non_finite_target_entropy_is_named(tiny_model):
    model = tiny_model("Pendulum-v1", ent_coef="auto")
    model.learn(model.learning_starts)
    model.target_entropy = float("nan")  # after the constructor's check
    with pytest.raises(FloatingPointError, match=r"temperature loss is nan.*entropy estimate or target_entropy"):
        model.train(gradient_steps=1, batch_size=model.batch_size)


class WritesMarker:
    """Unpickling this creates the file ``path``: code run by reading a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def crafted_archive(model_path, target, marker, member):
    """A copy of the model archive ``model_path`` whose ``member`` unpickles ``WritesMarker(marker)``."""
    with zipfile.ZipFile(model_path) as source, zipfile.ZipFile(target, "w") as archive:
        for item in source.namelist():
            content = source.read(item)
            if item == member == "data":
                data = json.loads(content)
                payload = base64.b64encode(cloudpickle.dumps(WritesMarker(marker))).decode()
                data["observation_space"][":serialized:"] = payload
                content = json.dumps(data).encode()
            elif item == member:
                buffer = io.BytesIO()
                th.save(WritesMarker(marker), buffer)
                content = buffer.getvalue()
            archive.writestr(item, content)


def test_sql_load_runs_code_stored_in_the_file(saved_model, tmp_path):
    """What the docs' security note says: SQL.load unpickles the file's data (SB3's format)."""
    _, path = saved_model
    crafted_archive(path, tmp_path / "crafted.zip", tmp_path / "marker", "data")
    with contextlib.suppress(Exception):
        SQL.load(tmp_path / "crafted.zip")
    assert (tmp_path / "marker").exists()


@pytest.mark.parametrize("member", ["data", "policy.pth"])
def test_set_parameters_runs_no_code_from_the_file(saved_model, tmp_path, member):
    """The documented safe way to load weights from an untrusted file: build the model, then set_parameters."""
    model, path = saved_model
    crafted_archive(path, tmp_path / "crafted.zip", tmp_path / "marker", member)
    fresh = SQL("MlpPolicy", "Pendulum-v1", **{**TINY_KWARGS, "policy_kwargs": {"net_arch": [32, 32]}})
    if member == "data":  # data is not read at all; the weights load
        fresh.set_parameters(str(tmp_path / "crafted.zip"))
        assert same(parameters(fresh.policy), parameters(model.policy))
    else:  # torch.load(weights_only=True) refuses the pickled object
        with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
            fresh.set_parameters(str(tmp_path / "crafted.zip"))
    assert not (tmp_path / "marker").exists()


def test_acting_by_resampling_on_an_overflowing_critic_names_the_cause(tiny_model):
    model = tiny_model("Pendulum-v1", policy_kwargs={"net_arch": [16], "acting_n_candidates": 8})
    with th.no_grad():
        for parameter in model.critic.parameters():
            parameter.mul_(1e20)  # finite, but Q overflows float32: what a learning rate too large leaves
    before = parameters(model.policy)
    observation = model.observation_space.sample()
    with pytest.raises(FloatingPointError, match=r"cannot act by resampling.*critic parameters reach \|.*Lower learning_rate"):
        model.predict(observation)
    assert same(before, parameters(model.policy))
    model.policy.acting_n_candidates = 0  # the way out the message gives
    assert np.all(np.isfinite(model.predict(observation)[0]))


def test_acting_by_resampling_on_a_nan_observation_names_the_observation(tiny_model):
    model = tiny_model("Pendulum-v1", policy_kwargs={"net_arch": [16], "acting_n_candidates": 8})
    with pytest.raises(FloatingPointError, match=r"cannot act by resampling.*observations contain NaN or Inf"):
        model.predict(np.array([np.nan, 0.0, 0.0], dtype=np.float32))

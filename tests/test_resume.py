import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium.wrappers import TransformObservation
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import sb3_sql
from sb3_sql import SQL, ResumableCheckpointCallback, load_checkpoint
from sb3_sql.resume import latest_checkpoint

# Pendulum episodes last 200 steps: with save_freq=100 the checkpoints land at 200, 400, 600.
MODEL_KWARGS = {"learning_starts": 100, "batch_size": 32, "seed": 0, "policy_kwargs": {"net_arch": [32, 32]}}
TOTAL_STEPS, INTERRUPT_AT, SAVE_FREQ = 700, 450, 100

SIGTERM_SCRIPT = f"""
import os, signal, sys
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from sb3_sql import SQL, ResumableCheckpointCallback

th.set_num_threads(1)


class Sigterm(BaseCallback):
    def _on_step(self):
        if self.num_timesteps == {INTERRUPT_AT}:
            os.kill(os.getpid(), signal.SIGTERM)  # the default action: the process dies at once
        return True


model = SQL("MlpPolicy", "Pendulum-v1", **{MODEL_KWARGS!r})
model.learn({TOTAL_STEPS}, callback=CallbackList([ResumableCheckpointCallback({SAVE_FREQ}, sys.argv[1]), Sigterm()]))
"""


class InterruptAt(BaseCallback):
    def __init__(self, num_timesteps):
        super().__init__()
        self.interrupt_at = num_timesteps

    def _on_step(self):
        if self.num_timesteps == self.interrupt_at:
            raise KeyboardInterrupt
        return True


def train(env, save_path, total_steps=TOTAL_STEPS, interrupt_at=None):
    model = SQL("MlpPolicy", env, **MODEL_KWARGS)
    callbacks = [ResumableCheckpointCallback(SAVE_FREQ, str(save_path))]
    if interrupt_at is not None:
        callbacks.append(InterruptAt(interrupt_at))
        with pytest.raises(KeyboardInterrupt):
            model.learn(total_steps, callback=CallbackList(callbacks))
    else:
        model.learn(total_steps, callback=CallbackList(callbacks))
    return model


def resume(save_path, env, total_steps=TOTAL_STEPS):
    model = load_checkpoint(str(save_path), env)
    callback = ResumableCheckpointCallback(SAVE_FREQ, str(save_path))
    model.learn(total_steps - model.num_timesteps, callback=callback, reset_num_timesteps=False)
    return model


def assert_same_training_state(first, second):
    assert first.num_timesteps == second.num_timesteps
    assert first._n_updates == second._n_updates and first._episode_num == second._episode_num
    for key, value in first.policy.state_dict().items():
        assert th.equal(value, second.policy.state_dict()[key]), key
    for optimizer in ("actor", "critic"):
        first_state = getattr(first, optimizer).optimizer.state_dict()["state"]
        second_state = getattr(second, optimizer).optimizer.state_dict()["state"]
        for index, moments in first_state.items():
            for name, value in moments.items():
                # Adam keeps its step counts on the CPU; SB3 loads them onto the model's device.
                assert th.equal(value.cpu(), second_state[index][name].cpu()), (optimizer, index, name)
    for name in ("observations", "actions", "rewards", "next_observations", "dones"):
        np.testing.assert_array_equal(getattr(first.replay_buffer, name), getattr(second.replay_buffer, name))
    np.testing.assert_array_equal(first._last_obs, second._last_obs)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    save_path = tmp_path_factory.mktemp("uninterrupted")
    return train("Pendulum-v1", save_path), save_path


def test_checkpoints_land_at_episode_starts(uninterrupted, tmp_path):
    _, save_path = uninterrupted
    assert sorted(path.name for path in save_path.glob("*_resume_state_*")) == [
        f"rl_model_resume_state_{steps}_steps.npz" for steps in (200, 400, 600)
    ]
    # Without an episode start within 2 * save_freq steps, the checkpoint cuts the episode at 200.
    train(gym.make("Pendulum-v1", max_episode_steps=1000), tmp_path, total_steps=450)
    assert sorted(path.name for path in tmp_path.glob("*_resume_state_*")) == [
        f"rl_model_resume_state_{steps}_steps.npz" for steps in (200, 400)
    ]


def test_resume_after_keyboard_interrupt_is_exact(uninterrupted, tmp_path):
    train("Pendulum-v1", tmp_path, interrupt_at=INTERRUPT_AT)
    assert latest_checkpoint(str(tmp_path)) == 400
    assert_same_training_state(uninterrupted[0], resume(tmp_path, gym.make("Pendulum-v1")))


def test_resume_after_sigterm_is_exact(uninterrupted, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SIGTERM_SCRIPT)
    python_path = os.pathsep.join(filter(None, [str(Path(sb3_sql.__file__).parents[1]), os.environ.get("PYTHONPATH")]))
    environment = {"PYTHONPATH": python_path, "OMP_NUM_THREADS": "1", "PATH": ""}
    completed = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], env=environment, timeout=300)
    assert completed.returncode == -signal.SIGTERM
    assert latest_checkpoint(str(tmp_path / "run")) == 400
    assert_same_training_state(uninterrupted[0], resume(tmp_path / "run", gym.make("Pendulum-v1")))


def test_plain_load_is_not_exact(uninterrupted):
    """The control: SB3's own recipe re-seeds the generators and resets the env with the model's seed."""
    model, save_path = uninterrupted
    plain = SQL.load(save_path / "rl_model_400_steps.zip", env=gym.make("Pendulum-v1"))
    plain.load_replay_buffer(save_path / "rl_model_replay_buffer_400_steps.pkl")
    callback = ResumableCheckpointCallback(SAVE_FREQ, str(save_path / "plain"))
    plain.learn(TOTAL_STEPS - 400, callback=callback, reset_num_timesteps=False)
    assert plain._n_updates == model._n_updates
    assert not all(th.equal(a, b) for a, b in zip(plain.actor.parameters(), model.actor.parameters(), strict=True))


def test_incomplete_checkpoints_are_skipped(uninterrupted, tmp_path):
    _, save_path = uninterrupted
    shutil.copytree(save_path, tmp_path / "run")
    newest = tmp_path / "run" / "rl_model_resume_state_600_steps.npz"
    newest.rename(newest.with_suffix(".npz.tmp"))  # as left by a save killed before os.replace
    assert latest_checkpoint(str(tmp_path / "run")) == 400
    with pytest.raises(FileNotFoundError, match="No complete checkpoint other_resume_state_"):
        latest_checkpoint(str(tmp_path / "run"), name_prefix="other")
    with pytest.raises(ValueError, match="save_freq must be at least 1"):
        ResumableCheckpointCallback(0, str(tmp_path))


def test_an_env_that_resets_differently_is_reported(uninterrupted):
    _, save_path = uninterrupted
    base = gym.make("Pendulum-v1")
    shifted = TransformObservation(base, lambda obs: obs + np.float32(1e-3), base.observation_space)
    with pytest.warns(UserWarning, match="returns other observations than at the checkpoint of step 600"):
        model = load_checkpoint(str(save_path), shifted)
    # Training continues from the observations of the env it was given.
    saved = SQL.load(save_path / "rl_model_600_steps.zip", env=gym.make("Pendulum-v1"), force_reset=False)
    np.testing.assert_allclose(model._last_obs, saved._last_obs + 1e-3, rtol=0, atol=1e-6)


def test_resume_with_vec_normalize_is_exact(tmp_path):
    def make_env():
        return VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]))

    total_steps = 500
    model = train(make_env(), tmp_path / "full", total_steps=total_steps)
    train(make_env(), tmp_path / "run", total_steps=total_steps, interrupt_at=INTERRUPT_AT)
    with pytest.raises(ValueError, match="Pass env without VecNormalize"):
        load_checkpoint(str(tmp_path / "run"), make_env())
    resumed = resume(tmp_path / "run", DummyVecEnv([lambda: gym.make("Pendulum-v1")]), total_steps=total_steps)
    assert_same_training_state(model, resumed)
    for name in ("obs_rms", "ret_rms"):
        first, second = getattr(model.get_vec_normalize_env(), name), getattr(resumed.get_vec_normalize_env(), name)
        np.testing.assert_array_equal(first.mean, second.mean)
        np.testing.assert_array_equal(first.var, second.var)


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path):
    """A change that leaves the file readable: one byte of the replay buffer's arrays."""
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


@pytest.mark.parametrize(
    "damaged, damage",
    [
        ("rl_model_600_steps.zip", truncate),
        ("rl_model_replay_buffer_600_steps.pkl", truncate),
        ("rl_model_replay_buffer_600_steps.pkl", flip_a_byte),
        ("rl_model_600_steps.zip", os.remove),
    ],
)
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(uninterrupted, tmp_path, damaged, damage):
    model, save_path = uninterrupted
    shutil.copytree(save_path, tmp_path / "run")
    damage(tmp_path / "run" / damaged)
    with pytest.warns(UserWarning, match="The checkpoint of step 600 .* does not load .*trying the one before it"):
        resumed = resume(tmp_path / "run", gym.make("Pendulum-v1"))
    assert_same_training_state(model, resumed)


def test_a_damaged_resume_state_falls_back_and_none_loading_is_an_error(uninterrupted, tmp_path):
    _, save_path = uninterrupted
    shutil.copytree(save_path, tmp_path / "run")
    truncate(tmp_path / "run" / "rl_model_resume_state_600_steps.npz")
    with pytest.warns(UserWarning, match="step 600"):
        assert load_checkpoint(str(tmp_path / "run"), gym.make("Pendulum-v1")).num_timesteps == 400
    for steps in (200, 400):
        truncate(tmp_path / "run" / f"rl_model_{steps}_steps.zip")
    with (
        pytest.warns(UserWarning),
        pytest.raises(ValueError, match=r"No complete checkpoint .* loads \(tried steps \[600, 400, 200"),
    ):
        load_checkpoint(str(tmp_path / "run"), gym.make("Pendulum-v1"))
    # A checkpoint asked for by its step count is loaded or refused, without fallback.
    with pytest.raises(ValueError, match=r"'rl_model_400_steps\.zip' is damaged: its SHA-256 digest differs"):
        load_checkpoint(str(tmp_path / "run"), gym.make("Pendulum-v1"), num_timesteps=400)


def test_keep_last_removes_older_checkpoints_and_leftovers(tmp_path):
    (tmp_path / "rl_model_replay_buffer_100_steps.pkl.tmp").write_bytes(b"left by a killed save")
    model = SQL("MlpPolicy", "Pendulum-v1", **MODEL_KWARGS)
    model.learn(650, callback=ResumableCheckpointCallback(SAVE_FREQ, str(tmp_path), keep_last=2))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        f"rl_model_{kind}{steps}_steps.{extension}"
        for steps in (400, 600)
        for kind, extension in (("", "zip"), ("replay_buffer_", "pkl"), ("resume_state_", "npz"))
    )
    with pytest.raises(ValueError, match="keep_last must be at least 1"):
        ResumableCheckpointCallback(SAVE_FREQ, str(tmp_path), keep_last=0)


def test_every_file_is_written_to_a_temporary_name_flushed_then_renamed_resume_state_last(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def recorded_fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        fsync(descriptor)

    def recorded_replace(source, target):
        events.append(("replace", str(source)))
        replace(source, target)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    model = SQL("MlpPolicy", "Pendulum-v1", **MODEL_KWARGS)
    model.learn(250, callback=ResumableCheckpointCallback(SAVE_FREQ, str(tmp_path), keep_last=2))
    names = ["rl_model_200_steps.zip", "rl_model_replay_buffer_200_steps.pkl", "rl_model_resume_state_200_steps.npz"]
    expected = []
    for name in names:
        temporary = str(tmp_path / name) + ".tmp"
        expected += [("fsync", temporary), ("replace", temporary)]
    assert events == [*expected, ("fsync", str(tmp_path))]  # the folder last, for the renames


def test_a_save_cut_short_leaves_the_previous_checkpoints_complete(tmp_path, monkeypatch):
    save_replay_buffer, calls = SQL.save_replay_buffer, []

    def killed_at_the_second(model, file):
        calls.append(file)
        if len(calls) == 2:
            file.write(b"partial")
            raise KeyboardInterrupt
        save_replay_buffer(model, file)

    monkeypatch.setattr(SQL, "save_replay_buffer", killed_at_the_second)
    model = SQL("MlpPolicy", "Pendulum-v1", **MODEL_KWARGS)
    with pytest.raises(KeyboardInterrupt):
        model.learn(500, callback=ResumableCheckpointCallback(SAVE_FREQ, str(tmp_path)))
    assert not (tmp_path / "rl_model_replay_buffer_400_steps.pkl").exists()
    assert (tmp_path / "rl_model_replay_buffer_400_steps.pkl.tmp").exists()
    assert latest_checkpoint(str(tmp_path)) == 200
    monkeypatch.undo()
    assert load_checkpoint(str(tmp_path), gym.make("Pendulum-v1")).num_timesteps == 200


def test_another_number_of_envs_is_refused_before_anything_loads(uninterrupted, monkeypatch):
    _, save_path = uninterrupted
    monkeypatch.setattr(SQL, "load", lambda *args, **kwargs: pytest.fail("the model was loaded"))
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1")] * 2)
    with pytest.raises(ValueError, match=r"saved with 1 environments, env has 2.*make_vec_env\(env_id, n_envs=1\)"):
        load_checkpoint(str(save_path), env)


class WritesMarker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_reading_a_crafted_resume_state_runs_no_code(uninterrupted, tmp_path):
    _, save_path = uninterrupted
    shutil.copytree(save_path, tmp_path / "run")
    marker = tmp_path / "marker"
    # A pickle in the earlier format's name, and an .npz holding a pickled object, both newer than step 600.
    with open(tmp_path / "run" / "rl_model_resume_state_800_steps.pkl", "wb") as file:
        pickle.dump({"env_seed": 0, "rng": WritesMarker(marker)}, file)
    for name in ("rl_model_800_steps.zip", "rl_model_replay_buffer_800_steps.pkl"):
        shutil.copy(tmp_path / "run" / name.replace("800", "600"), tmp_path / "run" / name)
    np.savez(tmp_path / "run" / "rl_model_resume_state_800_steps.npz", metadata=np.array([WritesMarker(marker)], dtype=object))
    with pytest.warns(UserWarning, match=r"step 800 .* does not load \(ValueError: Object arrays cannot be loaded"):
        model = load_checkpoint(str(tmp_path / "run"), gym.make("Pendulum-v1"))
    assert model.num_timesteps == 600
    assert not marker.exists()

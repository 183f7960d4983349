"""The temperature's one home, the policy's ``log_ent_coef``, for both action kinds, and archives saved before it."""

import io
import zipfile

import numpy as np
import pytest
import torch as th

from sb3_sql import SQL
from sb3_sql.policies import SoftQPolicy, SVGDPolicy


def drop_from_policy_state(path, key="log_ent_coef"):
    """Rewrite an SB3 archive as an older version saved it: ``key`` removed from the policy's state dict."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    state = th.load(io.BytesIO(members["policy.pth"]), weights_only=True)
    assert key in state
    del state[key]
    buffer = io.BytesIO()
    th.save(state, buffer)
    members["policy.pth"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


@pytest.mark.parametrize("env_id, policy_class", [("Pendulum-v1", SVGDPolicy), ("CartPole-v1", SoftQPolicy)])
@pytest.mark.parametrize("ent_coef", [0.3, "auto_0.3"])
def test_the_policy_holds_the_temperature(tiny_model, env_id, policy_class, ent_coef):
    model = tiny_model(env_id, ent_coef=ent_coef)
    assert isinstance(model.policy, policy_class)
    assert "log_ent_coef" in model.policy.state_dict()
    assert model.policy.ent_coef == pytest.approx(0.3)
    assert model.current_ent_coef() == pytest.approx(0.3)
    if ent_coef == "auto_0.3":
        # SAC's surface: the learnt tensor is the policy's, stepped by ent_coef_optimizer; no fixed tensor.
        assert model.log_ent_coef is model.policy.log_ent_coef
        assert model.ent_coef_optimizer.param_groups[0]["params"][0] is model.policy.log_ent_coef
        assert model.ent_coef_tensor is None
        model.learn(80)
        assert model.policy.ent_coef != pytest.approx(0.3)
        assert model.current_ent_coef() == pytest.approx(model.policy.ent_coef)
    else:
        assert model.log_ent_coef is None and model.ent_coef_optimizer is None
        assert not model.policy.log_ent_coef.requires_grad
        assert float(model.ent_coef_tensor) == pytest.approx(0.3)
        model.learn(80)
        assert model.policy.ent_coef == pytest.approx(0.3)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_a_fixed_temperature_loads_from_an_archive_without_it_in_the_policy(tiny_model, tmp_path, env_id):
    model = tiny_model(env_id, ent_coef=0.3)
    model.learn(60)
    model.save(tmp_path / "old")
    drop_from_policy_state(tmp_path / "old.zip")
    loaded = SQL.load(tmp_path / "old", env=model.get_env())
    # The missing temperature is the saved setting, in the policy from the start.
    assert loaded.policy.ent_coef == pytest.approx(0.3)
    for name, value in model.policy.state_dict().items():
        assert th.equal(value, loaded.policy.state_dict()[name]), name
    observations = np.stack([model.observation_space.sample() for _ in range(4)])
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0], loaded.predict(observations, deterministic=True)[0]
    )
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded.policy.ent_coef == pytest.approx(0.3)
    # Another key missing is still an error.
    model.save(tmp_path / "broken")
    drop_from_policy_state(tmp_path / "broken.zip", next(name for name in model.policy.state_dict() if "critic." in name))
    with pytest.raises(RuntimeError, match="Missing key"):
        SQL.load(tmp_path / "broken", env=model.get_env())


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
@pytest.mark.parametrize("old_archive", [False, True])
def test_a_learnt_temperature_loads_and_is_still_learnt(tiny_model, tmp_path, env_id, old_archive):
    model = tiny_model(env_id, ent_coef="auto_0.3")
    model.learn(100)
    learnt = model.policy.ent_coef
    assert learnt != pytest.approx(0.3)
    model.save(tmp_path / "auto")
    if old_archive:
        # Continuous models kept a learnt temperature only as a PyTorch variable, as SAC does.
        drop_from_policy_state(tmp_path / "auto.zip")
    loaded = SQL.load(tmp_path / "auto", env=model.get_env())
    assert loaded.policy.ent_coef == pytest.approx(learnt, rel=1e-6)
    assert loaded.log_ent_coef is loaded.policy.log_ent_coef
    assert loaded.ent_coef_optimizer.param_groups[0]["params"][0] is loaded.policy.log_ent_coef
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded.policy.ent_coef != pytest.approx(learnt, rel=1e-6)

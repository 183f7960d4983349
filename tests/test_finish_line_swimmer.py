import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("mujoco")

from gymnasium.utils.env_checker import check_env

import sb3_sql  # noqa: F401  (registers the environments)
from sb3_sql.envs.finish_line_swimmer import FinishLineSwimmerEnv

DT = 0.04  # Swimmer-v5: frame_skip 4 x timestep 0.01


def step_from(env, x, x_velocity, action):
    """Put the straight swimmer's root at ``x`` moving at ``x_velocity`` (joints at rest), then take one step."""
    qpos, qvel = np.zeros(env.unwrapped.model.nq), np.zeros(env.unwrapped.model.nv)
    qpos[0], qvel[0] = x, x_velocity
    env.unwrapped.set_state(qpos, qvel)
    # Straight, the three equal segments' centres are at x + 1, x and x - 1: the centre of mass is at x.
    x_before = env.unwrapped.center_of_mass_x()
    assert x_before == pytest.approx(x)
    observation, reward, terminated, truncated, info = env.step(np.array(action, dtype=np.float32))
    return x_before, observation, reward, terminated, truncated, info


def test_check_env():
    check_env(FinishLineSwimmerEnv(), skip_render_check=True)


def test_registered_with_time_limit():
    spec = gym.spec("FinishLineSwimmer-v0")
    assert spec.max_episode_steps == 1000
    env = gym.make("FinishLineSwimmer-v0")
    observation, _ = env.reset(seed=0)
    assert observation.shape == (10,)  # qpos with the root's x and y, then qvel
    assert env.unwrapped.finish_distance == 2.0 and env.unwrapped.finish_bonus == 1000.0
    assert gym.make("FinishLineSwimmer-v0", finish_distance=3.0).unwrapped.finish_distance == 3.0


@pytest.mark.parametrize(("x", "velocity", "sign"), [(0.5, 1.0, 1), (-0.5, -1.0, 1), (0.5, -1.0, -1), (-0.5, 1.0, -1)])
def test_reward_is_speed_away_from_the_start_in_either_direction(x, velocity, sign):
    env = gym.make("FinishLineSwimmer-v0")
    env.reset(seed=0)
    env.unwrapped.start_com_x = 0.0
    action = [0.5, -1.0]
    x_before, observation, reward, terminated, _, info = step_from(env, x, velocity, action)
    x_after = info["com_x_position"]
    assert observation[0] == pytest.approx(info["x_position"])  # the root's x is observed
    assert x_after == pytest.approx(env.unwrapped.center_of_mass_x())
    assert np.sign(x_after - x_before) == np.sign(velocity)  # it did move that way
    # away from the start (0) pays |dx| / dt, back towards it -|dx| / dt; minus 1e-4 * (0.25 + 1)
    assert (abs(x_after) - abs(x_before)) == pytest.approx(sign * abs(x_after - x_before))
    expected = sign * abs(x_after - x_before) / DT - 1e-4 * 1.25
    assert reward == pytest.approx(expected, rel=1e-5)
    assert info["reward_forward"] == pytest.approx(sign * abs(info["com_x_velocity"]))
    assert info["com_x_velocity"] == pytest.approx((x_after - x_before) / DT)
    assert info["reward_finish"] == 0.0 and not info["is_success"] and not terminated


def test_absolute_speed_reward_pays_coming_back_too():
    env = gym.make("FinishLineSwimmer-v0", speed_reward="absolute")
    env.reset(seed=0)
    env.unwrapped.start_com_x = 0.0
    x_before, _, reward, _, _, info = step_from(env, 0.5, -1.0, [0.0, 0.0])
    assert info["com_x_position"] < x_before
    assert reward == pytest.approx(abs(info["com_x_position"] - x_before) / DT, rel=1e-5)


def test_speed_rewards_of_an_episode_add_up_to_the_distance_from_the_start():
    env = gym.make("FinishLineSwimmer-v0")
    env.reset(seed=1)
    start = env.unwrapped.start_com_x
    assert start == pytest.approx(env.unwrapped.center_of_mass_x()) and abs(start) < 0.5
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(200):
        *_, info = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        total += info["reward_forward"]
        assert info["com_x_start"] == start
    assert total == pytest.approx(abs(info["com_x_position"] - start) / DT, rel=1e-6, abs=1e-9)


def test_crossing_the_line_pays_the_bonus_and_terminates():
    env = gym.make("FinishLineSwimmer-v0")
    env.reset(seed=0)
    env.unwrapped.start_com_x = 0.0
    x_before, _, reward, terminated, truncated, info = step_from(env, 1.99, 1.0, [0.0, 0.0])
    assert info["com_x_position"] >= 2.0 > x_before
    assert terminated and not truncated and info["is_success"]
    assert reward == pytest.approx(abs(info["com_x_position"] - x_before) / DT + 1000.0, rel=1e-6)
    # just short of the line, or behind the start going backwards: no bonus
    _, _, reward, terminated, _, info = step_from(env, 1.5, 0.0, [0.0, 0.0])
    assert info["com_x_position"] < 2.0 and not terminated and info["reward_finish"] == 0.0
    _, _, reward, terminated, _, info = step_from(env, -2.5, -1.0, [0.0, 0.0])
    assert not terminated and reward > 0 and info["reward_finish"] == 0.0


def test_invalid_arguments():
    with pytest.raises(ValueError, match="finish_distance"):
        FinishLineSwimmerEnv(finish_distance=0.0)
    with pytest.raises(ValueError, match="finish_distance"):
        FinishLineSwimmerEnv(finish_distance=float("inf"))
    with pytest.raises(ValueError, match="finish_bonus"):
        FinishLineSwimmerEnv(finish_bonus=float("nan"))
    with pytest.raises(ValueError, match="speed_reward"):
        FinishLineSwimmerEnv(speed_reward="signed")


def test_render_rgb_array():
    env = gym.make("FinishLineSwimmer-v0", render_mode="rgb_array", width=64, height=48)
    env.reset(seed=0)
    try:
        frame = env.render()
    except Exception as error:  # mujoco.FatalError, or an OpenGL error without a display, EGL or OSMesa
        pytest.skip(f"MuJoCo cannot render on this machine (set MUJOCO_GL=egl or osmesa where available): {error!r}")
    finally:
        env.close()
    assert frame.dtype == np.uint8 and frame.shape == (48, 64, 3)

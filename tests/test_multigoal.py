import importlib

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

import sb3_sql.envs
from sb3_sql.envs.multigoal import GOALS, MultiGoalEnv, goal_cost, goal_rollouts


def step_from(position, action):
    env = MultiGoalEnv()
    env.reset(seed=0)
    env.position = np.array(position, dtype=np.float64)
    return env.step(np.array(action, dtype=np.float32))


def test_check_env():
    check_env(MultiGoalEnv())
    check_env(gym.make("MultiGoal-v0").unwrapped)


def test_registered_with_time_limit_and_not_replaced_on_reimport():
    spec = gym.spec("MultiGoal-v0")
    assert spec.max_episode_steps == 30
    importlib.reload(sb3_sql.envs)
    assert gym.spec("MultiGoal-v0") is spec


def test_reset_near_origin_and_seeded():
    env = MultiGoalEnv()
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    assert first.dtype == np.float32 and first.shape == (2,)
    np.testing.assert_array_equal(first, again)
    starts = np.array([env.reset()[0] for _ in range(2000)])
    # 0.1 * N(0, I): standard deviation 0.1 per coordinate.
    np.testing.assert_allclose(starts.std(axis=0), [0.1, 0.1], rtol=0.1)
    np.testing.assert_allclose(starts.mean(axis=0), [0.0, 0.0], atol=0.015)


def test_reward_away_from_goals():
    # s' = (1, 0): -30 * 1 - min_g ||s' - g||^2 = -30 - 16
    observation, reward, terminated, truncated, _ = step_from([0.0, 0.0], [1.0, 0.0])
    np.testing.assert_allclose(observation, [1.0, 0.0])
    assert reward == pytest.approx(-46.0)
    assert not terminated and not truncated


def test_goal_reward_and_termination():
    # s' = (4.5, 0) is 0.5 from (5, 0): -30 * 0.25 - 0.25 + 10
    _, reward, terminated, _, info = step_from([4.0, 0.0], [0.5, 0.0])
    assert reward == pytest.approx(2.25)
    assert terminated and info["goal_index"] == 0
    # exactly at distance 1 the goal is not reached (strict inequality): -30 * 0.25 - 1
    _, reward, terminated, _, info = step_from([0.0, -3.5], [0.0, -0.5])
    assert reward == pytest.approx(-8.5)
    assert not terminated and info["goal_index"] == -1
    _, _, terminated, _, info = step_from([-0.2, 4.5], [0.0, 0.0])
    assert terminated and info["goal_index"] == 2


def test_action_is_clipped_before_cost_and_move():
    # (3, -2) is clipped to (1, -1): s' = (1, -1), nearest goal (0, -5) at squared distance 17
    observation, reward, _, _, _ = step_from([0.0, 0.0], [3.0, -2.0])
    np.testing.assert_allclose(observation, [1.0, -1.0])
    assert reward == pytest.approx(-30 * 2 - 17)


def test_position_is_clipped_to_the_box():
    # (6.5, 6.5) + (1, 1) is clipped to (7, 7): squared distance 53 to (5, 0) and (0, 5)
    observation, reward, terminated, _, _ = step_from([6.5, 6.5], [1.0, 1.0])
    np.testing.assert_allclose(observation, [7.0, 7.0])
    assert reward == pytest.approx(-30 * 2 - 53)
    assert not terminated


def test_truncated_after_30_steps():
    env = gym.make("MultiGoal-v0")
    env.reset(seed=0)
    for _ in range(29):
        *_, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert not terminated and not truncated
    *_, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
    assert truncated and not terminated


def test_goal_cost():
    np.testing.assert_allclose(goal_cost(np.array([[0.0, 0.0], [5.0, 0.0], [0.0, -4.0]])), [25.0, 0.0, 1.0])


def test_render_mode():
    with pytest.raises(ValueError, match="render_mode"):
        MultiGoalEnv(render_mode="human")
    env = gym.make("MultiGoal-v0", render_mode="rgb_array")
    env.reset(seed=0)
    start = env.render()
    assert start.dtype == np.uint8 and start.ndim == 3 and start.shape[2] == 3
    env.step(np.array([1.0, 1.0], dtype=np.float32))
    assert not np.array_equal(env.render(), start)  # the position and the path moved


class ConstantPolicy:
    def __init__(self, action):
        self.action = np.array(action, dtype=np.float32)

    def predict(self, observation, deterministic=False):
        return self.action, None


def test_goal_rollouts():
    goal_indices, paths = goal_rollouts(ConstantPolicy([0.0, -1.0]), n_episodes=3)
    np.testing.assert_array_equal(goal_indices, [3, 3, 3])
    assert all(np.linalg.norm(path[-1] - GOALS[3]) < 1 for path in paths)
    goal_indices, paths = goal_rollouts(ConstantPolicy([0.0, 0.0]), n_episodes=2)
    np.testing.assert_array_equal(goal_indices, [-1, -1])
    assert [len(path) for path in paths] == [31, 31]  # the start and 30 steps, then truncation
    with pytest.raises(ValueError, match="n_episodes"):
        goal_rollouts(ConstantPolicy([0.0, 0.0]), n_episodes=0)


def test_goal_weights_pay_per_goal():
    env = gym.make("MultiGoal-v0", goal_weights=(0.0, 0.0, 0.5, 0.0)).unwrapped
    env.reset(seed=0)
    # (5, 0) has weight 0: no goal there, the distance cost is to (0, 5): -30 * 0.25 - (4.5^2 + 5^2)
    env.position = np.array([4.0, 0.0])
    _, reward, terminated, _, info = env.step(np.array([0.5, 0.0], dtype=np.float32))
    assert reward == pytest.approx(-7.5 - 45.25)
    assert not terminated and info["goal_index"] == -1
    # (0, 4.5) is 0.5 from (0, 5), which pays 0.5 * 10: -30 * 0.25 - 0.25 + 5
    env.position = np.array([0.0, 4.0])
    _, reward, terminated, _, info = env.step(np.array([0.0, 0.5], dtype=np.float32))
    assert reward == pytest.approx(-2.75)
    assert terminated and info["goal_index"] == 2


def test_default_goal_weights_are_the_paper_task():
    weighted = MultiGoalEnv(goal_weights=(1, 1, 1, 1))
    for env in (MultiGoalEnv(), weighted):
        env.reset(seed=0)
        env.position = np.array([4.0, 0.0])
        assert env.step(np.array([0.5, 0.0], dtype=np.float32))[1] == pytest.approx(2.25)


@pytest.mark.parametrize("goal_weights", [(1, 0, 1), (0, 0, 0, 0), (1, -1, 1, 1), (1, float("nan"), 1, 1)])
def test_invalid_goal_weights_are_refused(goal_weights):
    with pytest.raises(ValueError, match="goal_weights must be 4 non-negative finite numbers"):
        MultiGoalEnv(goal_weights=goal_weights)

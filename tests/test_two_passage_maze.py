import importlib

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sb3_sql.envs
from sb3_sql.envs.two_passage_maze import GOAL, START, TwoPassageMazeEnv, maze_rollouts, maze_walls, passage_of


def step_from(position, action, open_passage="right"):
    env = TwoPassageMazeEnv(open_passage=open_passage)
    env.reset(seed=0)
    env.position = np.array(position, dtype=np.float64)
    return env.step(np.array(action, dtype=np.float32))


def test_check_env():
    gym_check_env(TwoPassageMazeEnv())
    gym_check_env(gym.make("TwoPassageMaze-v0", open_passage="left").unwrapped)
    sb3_check_env(TwoPassageMazeEnv())


def test_registered_with_time_limit_and_not_replaced_on_reimport():
    spec = gym.spec("TwoPassageMaze-v0")
    assert spec.max_episode_steps == 50
    importlib.reload(sb3_sql.envs)
    assert gym.spec("TwoPassageMaze-v0") is spec
    assert gym.make("TwoPassageMaze-v0").unwrapped.open_passage == "right"


def test_reset_at_bottom_centre_and_seeded():
    env = TwoPassageMazeEnv()
    first, info = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    assert first.dtype == np.float32 and first.shape == (2,)
    np.testing.assert_array_equal(first, again)
    assert info == {"is_success": False, "passage": "right"}
    starts = np.array([env.reset()[0] for _ in range(2000)])
    np.testing.assert_allclose(starts.mean(axis=0), START, atol=0.015)
    np.testing.assert_allclose(starts.std(axis=0), [0.1, 0.1], rtol=0.1)


def test_free_move_reward():
    # (0, -3.5) + (1, 1) = (1, -2.5): reward -||(1, -2.5) - (0, 2.5)|| = -sqrt(1 + 25)
    observation, reward, terminated, truncated, info = step_from([0.0, -3.5], [1.0, 1.0])
    np.testing.assert_allclose(observation, [1.0, -2.5])
    assert reward == pytest.approx(-np.sqrt(26.0))
    assert not terminated and not truncated and info == {"is_success": False, "passage": "right"}


def test_action_and_position_are_clipped():
    # (3, -2) is clipped to (1, -1): (0, -3.5) -> (1, -4.5), distance sqrt(1 + 49)
    observation, reward, *_ = step_from([0.0, -3.5], [3.0, -2.0])
    np.testing.assert_allclose(observation, [1.0, -4.5])
    assert reward == pytest.approx(-np.sqrt(50.0))
    # (4.5, -4.5) + (1, -1) leaves the arena: clipped to the corner (5, -5), distance sqrt(25 + 56.25)
    observation, reward, *_ = step_from([4.5, -4.5], [1.0, -1.0])
    np.testing.assert_allclose(observation, [5.0, -5.0])
    assert reward == pytest.approx(-np.sqrt(81.25))


def test_floor_stops_the_point_before_it():
    # (0, -0.5) + (0, 1) crosses the floor y = 0 half way: it stops 0.01 before, at (0, -0.01), 2.51 from the goal
    observation, reward, terminated, *_ = step_from([0.0, -0.5], [0.0, 1.0])
    np.testing.assert_allclose(observation, [0.0, -0.01], atol=1e-7)
    assert reward == pytest.approx(-2.51)
    assert not terminated


def test_closed_side_is_a_dead_end_and_the_door_lets_through():
    # door on the right: from (-2.5, 2.5) the point stops at (-2.01, 2.5), 2.01 from the goal
    observation, reward, *_ = step_from([-2.5, 2.5], [1.0, 0.0])
    np.testing.assert_allclose(observation, [-2.01, 2.5], atol=1e-7)
    assert reward == pytest.approx(-2.01)
    # through the door: (2.5, 2.5) -> (1.5, 2.5)
    observation, reward, terminated, *_ = step_from([2.5, 2.5], [-1.0, 0.0])
    np.testing.assert_allclose(observation, [1.5, 2.5])
    assert reward == pytest.approx(-1.5) and not terminated
    # door on the left: the same moves swap roles
    observation, _, _, _, info = step_from([-2.5, 2.5], [1.0, 0.0], open_passage="left")
    np.testing.assert_allclose(observation, [-1.5, 2.5])
    assert info["passage"] == "left"
    observation, *_ = step_from([2.5, 2.5], [-1.0, 0.0], open_passage="left")
    np.testing.assert_allclose(observation, [2.01, 2.5], atol=1e-7)


def test_wall_end_points_block():
    # the door's upper edge (2, 3.5) is part of the wall: a move through it stops 0.01 before
    observation, *_ = step_from([2.5, 3.5], [-1.0, 0.0])
    np.testing.assert_allclose(observation, [2.01, 3.5], atol=1e-7)
    # a move along the floor's line ends on its tip (2, 0): stopped at (2.01, 0); pushing on does not pass
    env = TwoPassageMazeEnv()
    env.reset(seed=0)
    env.position = np.array([3.0, 0.0])
    observation, *_ = env.step(np.array([-1.0, 0.0], dtype=np.float32))
    np.testing.assert_allclose(observation, [2.01, 0.0], atol=1e-7)
    observation, *_ = env.step(np.array([-1.0, 0.0], dtype=np.float32))
    np.testing.assert_allclose(observation, [2.01, 0.0], atol=1e-6)


def test_no_leak_along_the_top_of_the_arena():
    # (2.5, 4.9) + (-1, 1) is clipped to (1.5, 5); the segment meets the wall x = 2 at y = 4.95 and stops before it
    observation, *_ = step_from([2.5, 4.9], [-1.0, 1.0])
    assert observation[0] > 2.0
    np.testing.assert_allclose(
        observation, [2.5 - (0.5 - 0.01 / np.hypot(1.0, 0.1)), 4.9 + 0.1 * (0.5 - 0.01 / np.hypot(1.0, 0.1))], atol=1e-6
    )


def test_goal_reward_and_termination():
    # (-1.5, 2.5) + (1, 0) = (-0.5, 2.5), 0.5 from the goal: -0.5 + 10, terminated
    _, reward, terminated, _, info = step_from([-1.5, 2.5], [1.0, 0.0])
    assert reward == pytest.approx(9.5)
    assert terminated and info["is_success"]
    # exactly at distance 1 the goal is not reached (strict inequality)
    _, reward, terminated, _, info = step_from([0.0, 1.0], [0.0, 0.5])
    assert reward == pytest.approx(-1.0)
    assert not terminated and not info["is_success"]


def test_hand_computed_path_through_the_door():
    moves = [(1, 1), (1, 1), (1, 1), (0, 1), (-0.4, 1), (-1, 1), (-1, 0)]
    positions = [(1, -2.5), (2, -1.5), (3, -0.5), (3, 0.5), (2.6, 1.5), (1.6, 2.5), (0.6, 2.5)]
    env = TwoPassageMazeEnv()
    env.reset(seed=0)
    env.position = START.copy()
    total = 0.0
    for move, position in zip(moves, positions, strict=True):
        observation, reward, terminated, *_ = env.step(np.array(move, dtype=np.float32))
        np.testing.assert_allclose(observation, position, atol=1e-6)
        total += reward
    assert terminated
    expected = -sum(np.hypot(x - GOAL[0], y - GOAL[1]) for x, y in positions) + 10.0
    assert total == pytest.approx(expected, abs=1e-5)
    assert total == pytest.approx(-12.405, abs=1e-3)


def test_truncated_after_50_steps():
    env = gym.make("TwoPassageMaze-v0")
    env.reset(seed=0)
    for _ in range(49):
        *_, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert not terminated and not truncated
    *_, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
    assert truncated and not terminated


def test_open_passage_option_and_errors():
    env = gym.make("TwoPassageMaze-v0")
    _, info = env.reset(seed=0, options={"open_passage": "left"})
    assert info["passage"] == "left" and env.unwrapped.open_passage == "left"
    np.testing.assert_array_equal(env.unwrapped.walls, maze_walls("left"))
    _, info = env.reset()  # the door stays where it was put
    assert info["passage"] == "left"
    with pytest.raises(ValueError, match="open_passage"):
        TwoPassageMazeEnv(open_passage="middle")
    with pytest.raises(ValueError, match="open_passage"):
        env.reset(options={"open_passage": "up"})
    with pytest.raises(ValueError, match="render_mode"):
        TwoPassageMazeEnv(render_mode="human")


def test_walls_mirror():
    right, left = maze_walls("right"), maze_walls("left")
    assert right.shape == (4, 2, 2)
    mirrored = {tuple(sorted(map(tuple, wall * [-1, 1]))) for wall in left}
    assert mirrored == {tuple(sorted(map(tuple, wall))) for wall in right}


def test_render():
    env = gym.make("TwoPassageMaze-v0", render_mode="rgb_array")
    env.reset(seed=0)
    start = env.render()
    assert start.dtype == np.uint8 and start.shape == (400, 400, 3)
    env.step(np.array([1.0, 1.0], dtype=np.float32))
    assert not np.array_equal(env.render(), start)


def test_passage_of():
    assert passage_of(np.array([[0, -3], [3, -1], [3, 1]])) == "right"
    assert passage_of(np.array([[0, -3], [-3, -1], [-3, 1]])) == "left"
    assert passage_of(np.array([[0, -3], [-3, 1], [3, 1]])) == "both"
    assert passage_of(np.array([[0, -3], [3, -1], [0, -0.01]])) == "none"


class ConstantPolicy:
    def __init__(self, action):
        self.action = np.array(action, dtype=np.float32)

    def predict(self, observation, deterministic=False):
        return self.action, None


def test_maze_rollouts():
    successes, paths = maze_rollouts(ConstantPolicy([0.0, 1.0]), n_episodes=2)
    np.testing.assert_array_equal(successes, [False, False])  # stuck under the floor
    assert [len(path) for path in paths] == [51, 51]
    assert all(-0.02 < path[-1][1] < 0 for path in paths)
    with pytest.raises(ValueError, match="n_episodes"):
        maze_rollouts(ConstantPolicy([0.0, 0.0]), n_episodes=0)

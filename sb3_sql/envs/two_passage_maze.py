"""TwoPassageMaze: a 2-D point mass that must go around a wall, by one of two passages, to a goal.

Source: the exploration experiment of Haarnoja et al., "Reinforcement Learning with Deep
Energy-Based Policies", ICML 2017, section 5.2 (a maze with a dense reward of minus the distance
to the target, where only one of two ways leads to it), here with the point mass of
``MultiGoal-v0`` instead of a robot. The dense reward pulls straight at the goal, which sits in a
walled chamber above the start; both passages around the chamber look equally good at first, and
the one without a door ends in a dead end close to the goal. A policy that keeps every promising
way open can find the door; one that commits early to a side can settle in the dead end.

Geometry (all in the units of the position; see the constants below)::

     y=5 +-----------+-----+-----------+-----+-----------+
         |           |           goal chamber|           |
         |   left    |                 door  |   right   |
         |  passage  |     (G)          ...  |  passage  |   door: a gap in the chamber
         |           |                 door  |           |   wall of the open passage's side,
     y=0 |           +-----------------------+           |   y in [1.5, 3.5]
         |                                               |
         |                     (S)                       |
    y=-5 +-----------------------------------------------+
        x=-5        x=-2                    x=2         x=5
"""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_sql.envs.rollouts import rollout_paths

# --- Geometry and reward constants (documented in TwoPassageMazeEnv's docstring). ---
ARENA_LIMIT = 5.0  # the arena is [-5, 5]^2; positions are clipped to it
CHAMBER_HALF_WIDTH = 2.0  # the goal chamber is x in [-2, 2], y in [0, 5]
DOOR_LOW, DOOR_HIGH = 1.5, 3.5  # the door: the gap, y in [1.5, 3.5], in the open side's chamber wall
GOAL = np.array([0.0, 2.5])  # the centre of the chamber, level with the door
GOAL_RADIUS = 1.0  # the goal is reached when ||s' - GOAL|| < 1
START = np.array([0.0, -3.5])  # bottom centre, below the chamber's floor
INIT_SIGMA = 0.1  # the start is START + 0.1 * N(0, I)
DISTANCE_COEFF = 1.0  # reward -1 * ||s' - GOAL|| per step ...
GOAL_REWARD = 10.0  # ... plus 10 (and termination) when the goal is reached
WALL_MARGIN = 1e-2  # a move that would cross a wall stops this far (along the move) before it
MAX_EPISODE_STEPS = 50
PASSAGES = ("left", "right")


def maze_walls(open_passage: str = "right") -> np.ndarray:
    """The wall segments of the maze whose door is on the ``open_passage`` side.

    :param open_passage: ``"left"`` or ``"right"``: the side of the chamber that has the door.
    :return: segments, shape ``[n_walls, 2, 2]`` (wall, end point, x/y): the chamber's floor
        ``(-2, 0)-(2, 0)``, the closed side wall ``(+-2, 0)-(+-2, 5)`` and the open side wall in
        two pieces ``(+-2, 0)-(+-2, 1.5)`` and ``(+-2, 3.5)-(+-2, 5)``.
    :raises ValueError: if ``open_passage`` is neither ``"left"`` nor ``"right"``.
    """
    if open_passage not in PASSAGES:
        raise ValueError(f"open_passage must be one of {PASSAGES}, got {open_passage!r}")
    w, top = CHAMBER_HALF_WIDTH, ARENA_LIMIT
    open_x = w if open_passage == "right" else -w
    return np.array(
        [
            [[-w, 0.0], [w, 0.0]],
            [[-open_x, 0.0], [-open_x, top]],
            [[open_x, 0.0], [open_x, DOOR_LOW]],
            [[open_x, DOOR_HIGH], [open_x, top]],
        ]
    )


def _cross(u: np.ndarray, v: np.ndarray) -> float:
    return float(u[0] * v[1] - u[1] * v[0])


def first_wall_hit(start: np.ndarray, end: np.ndarray, walls: np.ndarray, eps: float = 1e-12) -> float | None:
    """Where the segment ``start -> end`` first touches a wall, as the fraction ``t`` of the way.

    Walls are closed segments (their end points block), and a move along a wall's line is blocked
    where it first touches the wall.

    :param start: position, shape ``[2]``.
    :param end: intended new position, shape ``[2]``.
    :param walls: segments, shape ``[n_walls, 2, 2]``.
    :param eps: tolerance of the parallel and range tests.
    :return: the smallest ``t`` in ``[0, 1]`` with ``start + t (end - start)`` on a wall, or None.
    """
    move = end - start
    length2 = float(move @ move)
    if length2 == 0.0:
        return None
    hits = []
    for wall_start, wall_end in walls:
        edge = wall_end - wall_start
        offset = wall_start - start
        denominator = _cross(move, edge)
        if abs(denominator) > eps:
            t = _cross(offset, edge) / denominator
            u = _cross(offset, move) / denominator
            if -eps <= t <= 1 + eps and -eps <= u <= 1 + eps:
                hits.append(max(t, 0.0))
        elif abs(_cross(offset, move)) <= eps * np.sqrt(length2) * max(1.0, np.linalg.norm(offset)):
            # Collinear: the wall's end points at t0, t1 along the move; blocked where the overlap begins.
            t0, t1 = sorted((float(offset @ move) / length2, float((wall_end - start) @ move) / length2))
            if t1 >= -eps and t0 <= 1 + eps:
                hits.append(max(t0, 0.0))
    return min(hits) if hits else None


def passage_of(path: np.ndarray) -> str:
    """Which passage a path went up: ``"left"``, ``"right"``, ``"both"`` or ``"none"``.

    A path "used" a passage when one of its positions is beside the chamber on that side and above
    its floor (``|x| > 2`` and ``y > 0``).

    :param path: positions, shape ``[steps + 1, 2]``.
    """
    path = np.asarray(path)
    above = path[:, 1] > 0.0
    left = bool(np.any(above & (path[:, 0] < -CHAMBER_HALF_WIDTH)))
    right = bool(np.any(above & (path[:, 0] > CHAMBER_HALF_WIDTH)))
    return {(True, True): "both", (True, False): "left", (False, True): "right"}.get((left, right), "none")


class TwoPassageMazeEnv(gym.Env):
    """2-D point mass in a maze: a goal inside a walled chamber, reached through one of two passages.

    - arena ``[-5, 5]^2``; start ``(0, -3.5) + 0.1 N(0, I)`` (bottom centre); goal ``(0, 2.5)``
      inside the chamber ``x in [-2, 2], y in [0, 5]``, whose floor ``y = 0`` separates it from
      the start. The passages are the corridors ``x in [-5, -2]`` and ``x in [2, 5]`` beside the
      chamber; the chamber wall on the ``open_passage`` side has a door ``y in [1.5, 3.5]``, the
      other one is closed, so that passage ends 2 from the goal, behind a wall;
    - observation: the position ``s`` (float32, shape ``[2]``);
    - action: the velocity ``a``, clipped to ``[-1, 1]^2``; the intended position
      ``clip(s + a, -5, 5)`` is reached unless the move crosses or touches a wall, in which case
      the point stops ``0.01`` (along the move) before the first wall it meets (or stays put);
    - reward: ``-||s' - g||`` on the new position, plus 10 with termination when
      ``||s' - g|| < 1``. From the start, 7 steps through the door reach the goal with a return
      of about -12.4 (hand-computed path in the tests); the dead end behind the closed wall pays
      about -2.0 per step, the spot under the chamber's floor about -2.5 per step.
      Registered as ``TwoPassageMaze-v0`` with a 50-step time limit (truncation);
    - info: ``is_success`` (the goal was reached at this step) and ``passage``, the open side.

    :param render_mode: None or ``"rgb_array"`` (walls, goal, start, the path so far and the
        position; needs matplotlib).
    :param open_passage: ``"right"`` (default) or ``"left"``, the side of the door. It can be
        changed between episodes with ``reset(options={"open_passage": ...})`` or
        :meth:`set_open_passage`: blocking the passage an agent used after training.
    :raises ValueError: for another ``render_mode`` or ``open_passage``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012  (gymnasium declares it an instance variable)

    action_space: spaces.Box

    def __init__(self, render_mode: str | None = None, open_passage: str = "right"):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.set_open_passage(open_passage)
        self.observation_space = spaces.Box(-ARENA_LIMIT, ARENA_LIMIT, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.position = START.copy()
        self.path: list[np.ndarray] = []

    def set_open_passage(self, open_passage: str) -> None:
        """Put the door on the ``open_passage`` side (``"left"`` or ``"right"``), closing the other side.

        :raises ValueError: if ``open_passage`` is neither ``"left"`` nor ``"right"``.
        """
        self.walls = maze_walls(open_passage)
        self.open_passage = open_passage

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "open_passage" in options:
            self.set_open_passage(options["open_passage"])
        self.position = START + INIT_SIGMA * self.np_random.standard_normal(2)
        self.path = [self.position.copy()]
        return self.position.astype(np.float32), {"is_success": False, "passage": self.open_passage}

    def move(self, position: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The position after moving from ``position`` by the (already clipped) ``action``, walls included."""
        target = np.clip(position + action, -ARENA_LIMIT, ARENA_LIMIT)
        t = first_wall_hit(position, target, self.walls)
        if t is None:
            return target
        length = float(np.linalg.norm(target - position))
        return position + max(t - WALL_MARGIN / length, 0.0) * (target - position)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move by the velocity ``action`` (clipped to ``[-1, 1]^2``), stopping short of any wall.

        :return: the new position ``[2]``, the reward (minus the distance to the goal, plus the bonus
            at the goal), whether the goal was reached, whether the step limit cut the episode
            (always False here: the ``TimeLimit`` wrapper of the registration does it), and the info.
        """
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), self.action_space.low, self.action_space.high)
        self.position = self.move(self.position, action)
        self.path.append(self.position.copy())
        distance = float(np.linalg.norm(self.position - GOAL))
        terminated = distance < GOAL_RADIUS
        reward = -DISTANCE_COEFF * distance + (GOAL_REWARD if terminated else 0.0)
        return (
            self.position.astype(np.float32),
            reward,
            terminated,
            False,
            {"is_success": terminated, "passage": self.open_passage},
        )

    def render(self) -> np.ndarray | None:
        """Walls, goal, start, the path so far and the position as an RGB image ``[400, 400, 3]`` (uint8)."""
        if self.render_mode is None:
            gym.logger.warn(
                'Calling render() without a render_mode; use gym.make("TwoPassageMaze-v0", render_mode="rgb_array").'
            )
            return None
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(4, 4), dpi=100)
        canvas = FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        draw_maze(axes, self.open_passage, [np.array(self.path)])
        axes.plot(*self.position, "o", color="tab:blue", markersize=8)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def draw_maze(axes: Any, open_passage: str = "right", paths: Any = (), colors: Any = None) -> None:
    """Draw the maze (arena, walls, goal disk, start) and paths on matplotlib ``axes``.

    :param axes: matplotlib axes.
    :param open_passage: the side of the door, ``"left"`` or ``"right"``.
    :param paths: positions of each path, arrays of shape ``[steps + 1, 2]``.
    :param colors: one matplotlib color per path (default: all blue).
    """
    from matplotlib.patches import Circle, Rectangle

    axes.add_patch(
        Rectangle((-ARENA_LIMIT, -ARENA_LIMIT), 2 * ARENA_LIMIT, 2 * ARENA_LIMIT, fill=False, color="black", linewidth=2)
    )
    for wall in maze_walls(open_passage):
        axes.plot(wall[:, 0], wall[:, 1], color="black", linewidth=3)
    axes.add_patch(Circle(tuple(GOAL), GOAL_RADIUS, color="tab:green", alpha=0.4, label="goal"))
    axes.plot(*START, "s", color="tab:orange", markersize=8, label="start")
    colors = colors if colors is not None else ["tab:blue"] * len(paths)
    for path, color in zip(paths, colors, strict=False):
        path = np.asarray(path)
        axes.plot(path[:, 0], path[:, 1], color=color, linewidth=0.8, alpha=0.6)
    margin = 0.2
    axes.set_xlim(-ARENA_LIMIT - margin, ARENA_LIMIT + margin)
    axes.set_ylim(-ARENA_LIMIT - margin, ARENA_LIMIT + margin)
    axes.set_aspect("equal")
    axes.set_xlabel("x")
    axes.set_ylabel("y")


def maze_rollouts(
    model: Any, n_episodes: int = 20, seed: int = 0, deterministic: bool = False, open_passage: str = "right"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run a model on ``TwoPassageMaze-v0``; record which episodes reached the goal, and their paths.

    :param model: anything with SB3's ``predict(observation, deterministic=...)``.
    :param n_episodes: number of episodes.
    :param seed: seed of the first reset (the following resets continue its random stream).
    :param deterministic: passed to ``predict``.
    :param open_passage: the side of the door.
    :return: ``successes``, bool array of shape ``[n_episodes]``, and the paths, one
        ``[steps + 1, 2]`` array of positions each.
    :raises ValueError: if ``n_episodes < 1`` or ``open_passage`` is invalid.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    env = gym.make("TwoPassageMaze-v0", open_passage=open_passage)
    final_infos, paths = rollout_paths(model, env, n_episodes, seed, deterministic)
    return np.array([bool(info["is_success"]) for info in final_infos]), paths

"""MultiGoal: the 2-D point mass with four goals from the Soft Q-Learning paper.

Source: Haarnoja et al., "Reinforcement Learning with Deep Energy-Based Policies", ICML 2017,
section 5.1 and Figure 1, and the reference code's ``MultiGoalEnv`` (haarnoja/softqlearning).
Any of the four goals solves the task equally well, so a policy that keeps every mode reaches
all of them; a unimodal (e.g. Gaussian) policy tends to commit to one or two.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_sql.envs.rollouts import rollout_paths

if TYPE_CHECKING:
    from matplotlib.axes import Axes

GOALS = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
POSITION_LIMIT = 7.0
ACTION_COST_COEFF = 30.0
GOAL_REWARD = 10.0
GOAL_THRESHOLD = 1.0
INIT_SIGMA = 0.1
MAX_EPISODE_STEPS = 30


def goal_distances(positions: np.ndarray) -> np.ndarray:
    """Euclidean distances from positions to the four goals.

    :param positions: positions, shape ``[..., 2]``.
    :return: distances, shape ``[..., 4]`` (goal order as in ``GOALS``).
    """
    return np.linalg.norm(np.asarray(positions, dtype=np.float64)[..., None, :] - GOALS, axis=-1)


def goal_cost(positions: np.ndarray) -> np.ndarray:
    """The position part of the cost, ``min_g ||s - g||^2`` (the contours of the paper's Figure 1).

    :param positions: positions, shape ``[..., 2]``.
    :return: costs, shape ``[...]``.
    """
    return goal_distances(positions).min(axis=-1) ** 2


def draw_cost_contours(axes: "Axes", paths: Sequence[np.ndarray] = (), n_grid: int = 100) -> None:
    """Draw the MultiGoal position cost ``min_g ||s - g||^2``, the goals and paths on ``axes``.

    Used by :meth:`MultiGoalEnv.render` and by :func:`sb3_sql.plots.plot_cost_contours`; needs
    matplotlib (the ``plots`` extra).

    :param axes: matplotlib axes to draw on.
    :param paths: positions of each path, arrays of shape ``[steps + 1, 2]``.
    :param n_grid: grid points per axis for the contours.
    """
    coordinates = np.linspace(-POSITION_LIMIT, POSITION_LIMIT, n_grid)
    grid_x, grid_y = np.meshgrid(coordinates, coordinates)
    contours = axes.contour(grid_x, grid_y, goal_cost(np.stack([grid_x, grid_y], axis=-1)), levels=20, cmap="viridis")
    axes.clabel(contours, inline=True, fontsize=6, fmt="%.3g")
    for path in paths:
        axes.plot(path[:, 0], path[:, 1], color="tab:blue", linewidth=0.8, alpha=0.6)
    axes.plot(GOALS[:, 0], GOALS[:, 1], "o", color="tab:red", markersize=10, label="goals")
    axes.set_xlim(-POSITION_LIMIT, POSITION_LIMIT)
    axes.set_ylim(-POSITION_LIMIT, POSITION_LIMIT)
    axes.set_aspect("equal")
    axes.set_xlabel("x")
    axes.set_ylabel("y")


class MultiGoalEnv(gym.Env):
    """2-D point mass that moves by its action and is rewarded for reaching any of four goals.

    - observation: the position ``s`` in ``[-7, 7]^2`` (float32), starting at ``0.1 * N(0, I)``;
    - action: the velocity ``a``, clipped to ``[-1, 1]^2``; ``s' = clip(s + a, -7, 7)``;
    - reward: ``-30 ||a||^2 - min_g ||s' - g||^2`` on the clipped action and the new position,
      plus 10 with termination when ``min_g ||s' - g|| < 1``; goals at (5, 0), (-5, 0), (0, 5),
      (0, -5). Registered as ``MultiGoal-v0`` with a 30-step time limit (truncation).
    - info: ``goal_index``, the index in ``GOALS`` of the goal reached at termination, else -1.

    Task variants (the composition experiments of Haarnoja et al., ICRA 2018): with
    ``goal_weights=w``, goal ``g`` pays ``10 * w_g`` when reached, and goals of weight 0 are no
    goals at all (they neither end the episode nor enter the distance cost ``min_g ||s' - g||^2``,
    which runs over the goals of positive weight). E.g. ``gym.make("MultiGoal-v0",
    goal_weights=(1, 0, 1, 0))`` pays only for (5, 0) and (0, 5). The default ``(1, 1, 1, 1)`` is
    the paper's task.

    :param render_mode: None or ``"rgb_array"`` (an image of the goals, the cost contours, the
        path so far and the current position; needs matplotlib).
    :param goal_weights: four non-negative finite weights, one per goal in ``GOALS`` order, at
        least one positive.
    :raises ValueError: for another ``render_mode``, or ``goal_weights`` that are not four
        non-negative finite numbers with at least one positive.
    """

    # gymnasium declares metadata an instance attribute, so no ClassVar (which mypy would refuse).
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012
    action_space: spaces.Box

    def __init__(self, render_mode: str | None = None, goal_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        weights = np.asarray(goal_weights, dtype=np.float64)
        valid = np.all(np.isfinite(weights)) and np.all(weights >= 0) and np.any(weights > 0)
        if weights.shape != (len(GOALS),) or not valid:
            raise ValueError(
                f"goal_weights must be {len(GOALS)} non-negative finite numbers (one per goal {GOALS.tolist()}) with at "
                f"least one positive, got {goal_weights!r}; e.g. goal_weights=(1, 0, 1, 0) pays for (5, 0) and (0, 5)."
            )
        self.goal_weights = weights
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-POSITION_LIMIT, POSITION_LIMIT, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.position = np.zeros(2)
        self.path: list[np.ndarray] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start near the origin: position ``0.1 * N(0, I)``, shape ``[2]`` (float32), and an empty ``info``."""
        super().reset(seed=seed)
        self.position = np.clip(INIT_SIGMA * self.np_random.standard_normal(2), -POSITION_LIMIT, POSITION_LIMIT)
        self.path = [self.position.copy()]
        return self.position.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move by the velocity ``action`` (shape ``[2]``, clipped to ``[-1, 1]``) within ``[-7, 7]^2``.

        :return: the new position (shape ``[2]``, float32); the reward
            ``-30 ||a||^2 - min_g ||s' - g||^2`` over the goals of positive weight, plus ``10 * w_g``
            on reaching goal ``g`` (within distance 1, which terminates the episode); ``terminated``;
            ``truncated`` (always False: ``gym.make`` adds the 30-step limit); and
            ``info["goal_index"]``, the index in ``GOALS`` of the goal reached or -1.
        """
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), self.action_space.low, self.action_space.high)
        self.position = np.clip(self.position + action, -POSITION_LIMIT, POSITION_LIMIT)
        self.path.append(self.position.copy())
        # Goals of weight 0 are no goals: they neither attract nor end the episode.
        distances = np.where(self.goal_weights > 0, goal_distances(self.position), np.inf)
        nearest = int(distances.argmin())
        terminated = bool(distances[nearest] < GOAL_THRESHOLD)
        reward = -ACTION_COST_COEFF * float(action @ action) - float(distances[nearest] ** 2)
        reward += GOAL_REWARD * self.goal_weights[nearest] if terminated else 0.0
        return self.position.astype(np.float32), reward, terminated, False, {"goal_index": nearest if terminated else -1}

    def render(self) -> np.ndarray | None:
        """The goals, cost contours, the path so far and the current position as an RGB image ``[H, W, 3]`` (uint8)."""
        if self.render_mode is None:
            gym.logger.warn('Calling render() without a render_mode; use gym.make("MultiGoal-v0", render_mode="rgb_array").')
            return None
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(4, 4), dpi=100)
        canvas = FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        draw_cost_contours(axes, [np.array(self.path)])
        axes.plot(*self.position, "o", color="tab:blue", markersize=8)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def goal_rollouts(
    model: Any, n_episodes: int = 100, seed: int = 0, deterministic: bool = False
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run a model on ``MultiGoal-v0`` and record where each episode ended.

    An episode "ends at goal g" when it terminated within ``GOAL_THRESHOLD`` of goal g; one that
    is truncated by the 30-step limit ends at no goal.

    :param model: anything with SB3's ``predict(observation, deterministic=...)``.
    :param n_episodes: number of episodes.
    :param seed: seed of the first reset (the following resets continue its random stream).
    :param deterministic: passed to ``predict``; the paper evaluates the stochastic policy (False).
    :return: ``goal_indices``, shape ``[n_episodes]``, the index in ``GOALS`` of the goal each
        episode ended at or -1; and the paths, one ``[steps + 1, 2]`` array of positions each.
    :raises ValueError: if ``n_episodes < 1``.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    final_infos, paths = rollout_paths(model, gym.make("MultiGoal-v0"), n_episodes, seed, deterministic)
    return np.array([info["goal_index"] for info in final_infos]), paths

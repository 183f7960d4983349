"""FinishLineSwimmer: MuJoCo's Swimmer rewarded for speed in either direction, with a finish line ahead.

Source: the exploration experiment of Haarnoja et al., "Reinforcement Learning with Deep
Energy-Based Policies", ICML 2017, section 5.2 and Figure 3 (the swimmer rewarded for its speed
along x in either direction, and a finish line on one side). Swimming forwards and backwards pay
the same speed reward, so the objective is bimodal; only the forward direction reaches the line
and its bonus. A policy that commits early to swimming backwards never sees the bonus.

Needs MuJoCo (``pip install gymnasium[mujoco]``); ``FinishLineSwimmer-v0`` is registered only when
it is importable.
"""

from typing import Any

import numpy as np
from gymnasium.envs.mujoco.swimmer_v5 import SwimmerEnv

# --- Task constants (documented in FinishLineSwimmerEnv's docstring). ---
FINISH_DISTANCE = 2.0  # the finish line is x = +2 m (the root starts at x ~ 0; random torques wander ~0.5 m in 1000 steps)
FINISH_BONUS = 100.0  # paid once, with termination, when the root's x reaches the line
MAX_EPISODE_STEPS = 1000  # Swimmer-v5's time limit (40 s of simulation, dt = 0.04 s)


class FinishLineSwimmerEnv(SwimmerEnv):
    """Swimmer-v5 rewarded for ``|x velocity|`` and a bonus for crossing a finish line at ``x = +d``.

    - dynamics, action (``[-1, 1]^2`` joint torques) and ``dt = 0.04`` s: Swimmer-v5's;
    - observation: Swimmer-v5's with the root's x and y positions kept (shape ``[10]``: positions
      ``qpos`` then velocities ``qvel``), because the bonus depends on x;
    - reward: ``forward_reward_weight * |v_x| - ctrl_cost_weight * ||a||^2`` with ``v_x`` the
      root's x velocity over the step (Swimmer-v5's ``info["x_velocity"]``, m/s) and Swimmer-v5's
      default weights 1 and 1e-4 (the control cost is Swimmer's own, kept); plus
      ``finish_bonus`` (100) with termination on the first step whose final root x is at least
      ``finish_distance`` (2.0). Registered as ``FinishLineSwimmer-v0`` with a 1000-step time limit;
    - info: Swimmer-v5's, with ``reward_forward`` the speed term, ``reward_finish`` (0 or the
      bonus) and ``is_success`` (the line was crossed at this step).

    Going backwards (``-x``) pays the same speed reward but never the bonus.

    :param finish_distance: ``d > 0``, the x of the finish line (m).
    :param finish_bonus: bonus paid at the line (finite).
    :param kwargs: passed to Swimmer-v5 (e.g. ``render_mode``, ``ctrl_cost_weight``);
        ``exclude_current_positions_from_observation`` defaults to False here.
    :raises ValueError: if ``finish_distance`` is not positive and finite or ``finish_bonus`` is
        not finite.
    """

    def __init__(self, finish_distance: float = FINISH_DISTANCE, finish_bonus: float = FINISH_BONUS, **kwargs: Any):
        if not (np.isfinite(finish_distance) and finish_distance > 0):
            raise ValueError(f"finish_distance must be positive and finite, got {finish_distance!r}")
        if not np.isfinite(finish_bonus):
            raise ValueError(f"finish_bonus must be finite, got {finish_bonus!r}")
        kwargs.setdefault("exclude_current_positions_from_observation", False)
        super().__init__(**kwargs)
        self.finish_distance = float(finish_distance)
        self.finish_bonus = float(finish_bonus)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation, _, terminated, truncated, info = super().step(action)
        speed_reward = self._forward_reward_weight * abs(float(info["x_velocity"]))
        finished = bool(info["x_position"] >= self.finish_distance)
        info["reward_forward"] = speed_reward
        info["reward_finish"] = self.finish_bonus if finished else 0.0
        info["is_success"] = finished
        reward = speed_reward + float(info["reward_ctrl"]) + info["reward_finish"]
        return observation, reward, terminated or finished, truncated, info

"""FinishLineSwimmer: MuJoCo's Swimmer rewarded for speed in either direction, with a finish line ahead.

Source: the exploration experiment of Haarnoja et al., "Reinforcement Learning with Deep
Energy-Based Policies", ICML 2017, section 5.2 and Figure 3 (the swimmer rewarded for its speed
along x in either direction, and a finish line on one side). Swimming forwards and backwards pay
the same speed reward, so the objective is bimodal; only the forward direction reaches the line
and its bonus. A policy that commits early to swimming backwards never sees the bonus.

The speed is the one of the swimmer's centre of mass, not of its front segment (Swimmer-v5's
``x_velocity``): the front segment's x velocity swings back and forth with every stroke, so its
absolute value pays for wiggling in place (a pilot of SQL earned a return of about 1700 in an
episode that ended 0.4 m from the start). Internal torques cannot move the centre of mass; only
the push of the fluid can, so its speed pays for swimming.

Needs MuJoCo (``pip install gymnasium[mujoco]``); ``FinishLineSwimmer-v0`` is registered only when
it is importable.
"""

from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.swimmer_v5 import SwimmerEnv

# --- Task constants (documented in FinishLineSwimmerEnv's docstring). ---
FINISH_DISTANCE = 2.0  # the finish line is x = +2 m (the centre of mass starts at x ~ 0; random torques move it ~0.2 m in 1000 steps)
FINISH_BONUS = 100.0  # paid once, with termination, when the centre of mass reaches the line
MAX_EPISODE_STEPS = 1000  # Swimmer-v5's time limit (40 s of simulation, dt = 0.04 s)


class FinishLineSwimmerEnv(SwimmerEnv):
    """Swimmer-v5 rewarded for the speed ``|v_x|`` of its centre of mass and a bonus at a finish line ``x = +d``.

    - dynamics, action (``[-1, 1]^2`` joint torques) and ``dt = 0.04`` s: Swimmer-v5's;
    - observation: Swimmer-v5's with the root's x and y positions kept (shape ``[10]``: positions
      ``qpos`` then velocities ``qvel``), because the bonus depends on x;
    - reward: ``forward_reward_weight * |v_x| - ctrl_cost_weight * ||a||^2`` with ``v_x`` the
      x velocity (m/s) of the swimmer's centre of mass over the step, ``(c'_x - c_x) / dt``, and
      Swimmer-v5's default weights 1 and 1e-4 (the control cost is Swimmer's own, kept); plus
      ``finish_bonus`` (100) with termination on the first step whose final centre of mass x is
      at least ``finish_distance`` (2.0; the straight swimmer with its root at x = 0 has its
      centre of mass at x = 0). Registered as ``FinishLineSwimmer-v0`` with a 1000-step limit;
    - info: Swimmer-v5's (``x_position`` and ``x_velocity`` are the front segment's), with
      ``com_x_position`` and ``com_x_velocity`` (the centre of mass's), ``reward_forward`` the speed
      term, ``reward_finish`` (0 or the bonus) and ``is_success`` (the line was reached at this step).

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

    def center_of_mass_x(self) -> float:
        """The x of the swimmer's centre of mass (m) in the current state: body masses times body centres."""
        mujoco.mj_kinematics(self.model, self.data)
        masses = self.model.body_mass
        return float(masses @ self.data.xipos[:, 0] / masses.sum())

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        com_before = self.center_of_mass_x()
        observation, _, terminated, truncated, info = super().step(action)
        com_after = self.center_of_mass_x()
        com_velocity = (com_after - com_before) / self.dt
        speed_reward = self._forward_reward_weight * abs(com_velocity)
        finished = com_after >= self.finish_distance
        info["com_x_position"], info["com_x_velocity"] = com_after, com_velocity
        info["reward_forward"] = speed_reward
        info["reward_finish"] = self.finish_bonus if finished else 0.0
        info["is_success"] = finished
        reward = speed_reward + float(info["reward_ctrl"]) + info["reward_finish"]
        return observation, reward, terminated or finished, truncated, info

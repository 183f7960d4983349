"""FinishLineSwimmer: MuJoCo's Swimmer rewarded for speed in either direction, with a finish line ahead.

Source: the exploration experiment of Haarnoja et al., "Reinforcement Learning with Deep
Energy-Based Policies", ICML 2017, section 5.2 and Figure 3 (the swimmer rewarded for its speed
along x in either direction, and a finish line on one side). Swimming forwards and backwards pay
the same speed reward, so the objective is bimodal; only the forward direction reaches the line
and its bonus. A policy that commits early to swimming backwards never sees the bonus.

The speed is the one of the swimmer's centre of mass, and by default the speed at which it moves
*away from its start* along x: ``(|c'_x - c0_x| - |c_x - c0_x|) / dt``, which is ``|v_x|`` while
the swimmer swims away in either direction and ``-|v_x|`` when it comes back, so that an
episode's speed reward adds up to its final distance from the start over ``dt``. The literal
``|v_x|`` pays for strokes that go back and forth: the pilots measured it (docs/exploration.md)
with the front segment's ``|v_x|`` (Swimmer-v5's ``x_velocity``; SQL: return about 1700 in an
episode that ended 0.4 m from the start) and with the centre of mass's (SQL after 60000 steps:
return about 125, final x about 0). ``speed_reward="absolute"`` keeps the centre of mass's
``|v_x|`` for comparison.

Needs MuJoCo (``pip install gymnasium[mujoco]``); ``FinishLineSwimmer-v0`` is registered only when
it is importable.
"""

from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.swimmer_v5 import SwimmerEnv

# --- Task constants (documented in FinishLineSwimmerEnv's docstring). ---
# The finish line is x = +2 m: the centre of mass starts at x ~ 0, and random torques move it ~0.2 m in 1000 steps.
FINISH_DISTANCE = 2.0
# Paid once, with termination, when the centre of mass reaches the line. The speed reward adds up to
# 25 per metre (dt = 0.04 s); with the first bonus of 100, SQL swam 10.4 m backwards for 258.5, more
# than a crossing paid, and under a discount of 0.999 swimming backwards for ever was worth more than
# the line. With 1000 the line is worth more under discounts of 0.99 and 0.999 (docs/exploration.md).
FINISH_BONUS = 1000.0
SPEED_REWARDS = ("away_from_start", "absolute")
MAX_EPISODE_STEPS = 1000  # Swimmer-v5's time limit (40 s of simulation, dt = 0.04 s)


class FinishLineSwimmerEnv(SwimmerEnv):
    """Swimmer-v5 rewarded for the speed of its centre of mass along x in either direction, and a finish line ``x = +d``.

    - dynamics, action (``[-1, 1]^2`` joint torques) and ``dt = 0.04`` s: Swimmer-v5's;
    - observation: Swimmer-v5's with the root's x and y positions kept (shape ``[10]``: positions
      ``qpos`` then velocities ``qvel``), because the bonus depends on x;
    - reward: ``forward_reward_weight * speed - ctrl_cost_weight * ||a||^2`` with Swimmer-v5's
      default weights 1 and 1e-4 (the control cost is Swimmer's own, kept) and the speed (m/s) of
      the swimmer's centre of mass ``c`` over the step: ``(|c'_x - c0_x| - |c_x - c0_x|) / dt``
      away from its x at reset ``c0_x`` (within about 0.1 of 0; default,
      ``speed_reward="away_from_start"``), or
      ``|c'_x - c_x| / dt`` (``speed_reward="absolute"``); plus
      ``finish_bonus`` (1000) with termination on the first step whose final centre of mass x is
      at least ``finish_distance`` (2.0; the straight swimmer with its root at x = 0 has its
      centre of mass at x = 0). Registered as ``FinishLineSwimmer-v0`` with a 1000-step limit;
    - info: Swimmer-v5's (``x_position`` and ``x_velocity`` are the front segment's), with
      ``com_x_position`` and ``com_x_velocity`` (the centre of mass's), ``com_x_start`` (``c0_x``),
      ``reward_forward`` the speed term, ``reward_finish`` (0 or the bonus) and ``is_success`` (the line
      was reached at this step).

    Going backwards (``-x``) pays the same speed reward but never the bonus.

    :param finish_distance: ``d > 0``, the x of the finish line (m).
    :param finish_bonus: bonus paid at the line (finite).
    :param speed_reward: ``"away_from_start"`` (default) or ``"absolute"``, see above.
    :param kwargs: passed to Swimmer-v5 (e.g. ``render_mode``, ``ctrl_cost_weight``);
        ``exclude_current_positions_from_observation`` defaults to False here.
    :raises ValueError: if ``finish_distance`` is not positive and finite or ``finish_bonus`` is
        not finite, or another ``speed_reward``.
    """

    def __init__(
        self,
        finish_distance: float = FINISH_DISTANCE,
        finish_bonus: float = FINISH_BONUS,
        speed_reward: str = "away_from_start",
        **kwargs: Any,
    ):
        if not (np.isfinite(finish_distance) and finish_distance > 0):
            raise ValueError(f"finish_distance must be positive and finite, got {finish_distance!r}")
        if not np.isfinite(finish_bonus):
            raise ValueError(f"finish_bonus must be finite, got {finish_bonus!r}")
        if speed_reward not in SPEED_REWARDS:
            raise ValueError(f"speed_reward must be one of {SPEED_REWARDS}, got {speed_reward!r}")
        self.speed_reward = speed_reward
        self.start_com_x = 0.0
        kwargs.setdefault("exclude_current_positions_from_observation", False)
        super().__init__(**kwargs)
        self.finish_distance = float(finish_distance)
        self.finish_bonus = float(finish_bonus)

    def center_of_mass_x(self) -> float:
        """The x of the swimmer's centre of mass (m) in the current state: body masses times body centres."""
        mujoco.mj_kinematics(self.model, self.data)
        masses = self.model.body_mass
        return float(masses @ self.data.xipos[:, 0] / masses.sum())

    def reset_model(self) -> np.ndarray:
        observation = super().reset_model()
        self.start_com_x = self.center_of_mass_x()
        return observation

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:  # type: ignore[override]
        """Swimmer-v5's step with the finish-line reward (see the class docstring).

        :return: the observation, the reward (speed away from the start minus the control cost, plus
            the bonus at the line), whether the line was reached, Swimmer's truncation flag, and the info.
        """
        com_before = self.center_of_mass_x()
        observation, _, terminated, truncated, info = super().step(action)
        com_after = self.center_of_mass_x()
        com_velocity = (com_after - com_before) / self.dt
        if self.speed_reward == "absolute":
            speed = abs(com_velocity)
        else:
            speed = (abs(com_after - self.start_com_x) - abs(com_before - self.start_com_x)) / self.dt
        speed_reward = self._forward_reward_weight * speed
        finished = com_after >= self.finish_distance
        info["com_x_position"], info["com_x_velocity"], info["com_x_start"] = com_after, com_velocity, self.start_com_x
        info["reward_forward"] = speed_reward
        info["reward_finish"] = self.finish_bonus if finished else 0.0
        info["is_success"] = finished
        reward = speed_reward + float(info["reward_ctrl"]) + info["reward_finish"]
        return observation, reward, terminated or finished, truncated, info

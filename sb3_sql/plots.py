"""The pictures of the MultiGoal experiment (Haarnoja et al., ICML 2017, Figure 1).

- ``plot_q_contours``: the soft Q-function over a grid of actions at a few states, with actions
  drawn from the sampler on top: multimodal Q and samples that cover its modes are the point of
  soft Q-learning.
- ``plot_cost_contours``: the MultiGoal cost landscape with its goals and evaluation paths.

Needs matplotlib (``pip install sb3-sql[plots]``). Figures are built with matplotlib's
object-oriented API (no pyplot state), so they work on headless machines.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch as th
from matplotlib.figure import Figure
from stable_baselines3.common.policies import ContinuousCritic

from sb3_sql.envs.multigoal import draw_cost_contours
from sb3_sql.policies import SVGDPolicy
from sb3_sql.sql import SQL

# The states of the paper's Figure 1 (and of the reference code's plotter).
FIGURE1_STATES = ((-2.5, 0.0), (0.0, 0.0), (2.5, 2.5))


def plot_cost_contours(paths: Sequence[np.ndarray], filename: str | Path | None = None) -> Figure:
    """The MultiGoal cost contours with the four goals and evaluation paths (Figure 1, left).

    :param paths: positions of each evaluation episode, arrays of shape ``[steps + 1, 2]``
        (e.g. from ``sb3_sql.envs.multigoal.goal_rollouts``).
    :param filename: if given, the figure is saved there (the format follows the suffix, e.g. PNG).
    :return: the figure.
    :raises ValueError: if a path is not of shape ``[steps, 2]``.
    """
    for path in paths:
        if path.ndim != 2 or path.shape[1] != 2:
            raise ValueError(f"each path must be an array of positions of shape [steps, 2], got shape {path.shape}")
    figure = Figure(figsize=(6, 6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    draw_cost_contours(axes, paths)
    axes.set_title(f"MultiGoal cost min_g ||s - g||^2 and {len(paths)} evaluation paths")
    if filename is not None:
        figure.savefig(filename)
    return figure


def plot_q_contours(
    model: SQL,
    states: Sequence[Sequence[float]] = FIGURE1_STATES,
    n_grid: int = 50,
    n_samples: int = 100,
    filename: str | Path | None = None,
) -> Figure:
    """Soft Q contours over an action grid, with actions drawn from the sampler (Figure 1, right).

    One panel per state: ``Q(s, a)`` (minimum over the critics) on an ``n_grid x n_grid`` grid
    of actions covering ``[-1, 1]^2`` (the sampler's squashed action space, before
    ``unscale_action``), and ``n_samples`` actions ``tanh(f(s, xi))``, ``xi ~ N(0, I)``.

    :param model: a SQL model with a two-dimensional action space.
    :param states: observations, shape ``[n_states, obs_dim]``; the paper's (-2.5, 0), (0, 0), (2.5, 2.5) by default.
    :param n_grid: grid points per action axis.
    :param n_samples: sampler draws per state.
    :param filename: if given, the figure is saved there (e.g. a PNG).
    :return: the figure.
    :raises ValueError: if the model has discrete actions (no sampler), the action space is not
        two-dimensional, the states do not match the observation space's shape, or ``n_grid < 2``
        or ``n_samples < 1``.
    """
    policy, critic = model.policy, model.critic
    if not isinstance(policy, SVGDPolicy) or not isinstance(critic, ContinuousCritic):
        raise ValueError("plot_q_contours draws the sampler of a continuous-action model; this model has discrete actions")
    if model.actor.action_dim != 2:
        raise ValueError(
            f"plot_q_contours draws 2-D action grids; the model's action space has {model.actor.action_dim} dimensions"
        )
    observations = np.asarray(states, dtype=np.float32)
    observation_shape = model.observation_space.shape or ()
    if observations.ndim != 2 or observations.shape[1:] != observation_shape:
        raise ValueError(
            f"states must have shape [n_states, {', '.join(map(str, observation_shape))}] "
            f"(the observation space's shape), got {observations.shape}"
        )
    if n_grid < 2 or n_samples < 1:
        raise ValueError(f"n_grid must be at least 2 and n_samples at least 1, got n_grid={n_grid}, n_samples={n_samples}")

    axis_actions = np.linspace(-1.0, 1.0, n_grid)
    grid_x, grid_y = np.meshgrid(axis_actions, axis_actions)
    grid_actions = th.as_tensor(np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1), dtype=th.float32, device=model.device)
    with th.no_grad():
        obs_tensor, _ = policy.obs_to_tensor(observations)
        q_values = policy.particle_q_values(critic, obs_tensor, grid_actions).cpu().numpy()  # [n_states, n_grid^2]
        samples = th.tanh(model.actor.pre_tanh_particles(obs_tensor, n_samples)).cpu().numpy()  # [n_states, n_samples, 2]

    figure = Figure(figsize=(4 * len(observations), 4.4), dpi=100, layout="constrained")
    for index, observation in enumerate(observations):
        axes = figure.add_subplot(1, len(observations), index + 1)
        contours = axes.contour(grid_x, grid_y, q_values[index].reshape(n_grid, n_grid), levels=20, cmap="viridis")
        axes.clabel(contours, inline=True, fontsize=6, fmt="%.3g")
        axes.plot(samples[index, :, 0], samples[index, :, 1], "k.", markersize=4)
        axes.set_xlim(-1, 1)
        axes.set_ylim(-1, 1)
        axes.set_aspect("equal")
        axes.set_xlabel("action 0 (scaled to [-1, 1])")
        axes.set_ylabel("action 1")
        axes.set_title(f"state {tuple(np.round(observation, 2).tolist())}")
    figure.suptitle(f"soft Q contours and {n_samples} sampled actions")
    if filename is not None:
        figure.savefig(filename)
    return figure

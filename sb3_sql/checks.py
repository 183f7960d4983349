"""Checks that stop SQL before a numerical fault or a bad file can damage a model.

``check_finite_update`` runs before every optimizer step of ``SQL.train()``; ``check_finite_acting``
before an action is resampled; ``check_transitions``
before each transition enters the replay buffer; ``ObservationShapeCheck`` at each step of an
environment ``SQL`` wraps; ``check_model_archive`` before ``SQL.load()`` reads a file.
"""

import os
import pathlib
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples

#: Members every Stable-Baselines3 model archive holds (``BaseAlgorithm.save``).
ARCHIVE_MEMBERS = ("data", "policy.pth")
#: Past these magnitudes a failed update blames the observations' scale, then the parameters' (the
#: learning rate), before the temperature: products of such values with the weights approach
#: float32's largest value (3.4e38) within a few layers and a square.
OBSERVATION_SCALE_LIMIT = 1e6
PARAMETER_SCALE_LIMIT = 1e4


def _is_finite(values: th.Tensor | dict[str, th.Tensor]) -> bool:
    if isinstance(values, dict):
        return all(_is_finite(value) for value in values.values())
    return bool(th.isfinite(values).all())


def check_finite_update(
    name: str,
    loss: th.Tensor,
    parameters: Iterable[th.nn.Parameter],
    ent_coef: float | th.Tensor,
    replay_data: ReplayBufferSamples | DictReplayBufferSamples,
) -> None:
    """Refuse an optimizer step whose loss or gradients are not finite (NaN or +-Inf).

    Call it after ``loss.backward()`` and before ``optimizer.step()``: when it raises, the
    parameters of this optimizer still hold their last finite values, so ``model.save()`` keeps
    the last good model. The message names the first quantity, in the order the update computes
    them, that is not finite or too large for float32: the rewards or observations in the minibatch
    (non-finite; or observations beyond ``OBSERVATION_SCALE_LIMIT``), the parameters being updated
    (beyond ``PARAMETER_SCALE_LIMIT``: a learning rate too large), for the temperature step the
    entropy or ``target_entropy``, or else a temperature out of scale with the rewards (``Q / alpha``
    and the soft value ``alpha * log sum exp(Q / alpha)`` overflow float32 for a tiny or huge
    ``alpha`` or rewards near 1e30).

    :param name: which update this is (``"critic"`` or ``"sampler"``), used in the message.
    :param loss: the scalar loss that was just back-propagated.
    :param parameters: the parameters the optimizer is about to update (their ``.grad`` is read).
    :param ent_coef: the temperature ``alpha`` (reward units): a float, or a tensor of one element
        (read only for the message).
    :param replay_data: the minibatch the loss was computed on (rewards ``[batch, 1]``).
    :raises FloatingPointError: if the loss or a gradient is not finite.
    """
    parameters = list(parameters)
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    finite_gradients = th.isfinite(th.cat([gradient.flatten() for gradient in gradients])).all()
    if bool(th.isfinite(loss) & finite_gradients):  # the call's one device synchronisation when all is finite
        return
    what = f"the {name} loss is {loss.item()}" if not _is_finite(loss) else f"the {name} gradients are not finite"
    raise FloatingPointError(
        f"SQL stopped before the {name} optimizer step: {what}. Likely cause: "
        f"{_non_finite_cause(name, parameters, ent_coef, replay_data)} "
        f"The {name} parameters were not updated by this step and hold finite values; model.save() keeps them."
    )


def _largest_magnitude(values: th.Tensor | dict[str, th.Tensor] | Iterable[th.Tensor]) -> float:
    tensors = values.values() if isinstance(values, dict) else [values] if isinstance(values, th.Tensor) else values
    return max((float(tensor.detach().abs().max()) for tensor in tensors if tensor.numel() > 0), default=0.0)


def _non_finite_cause(
    name: str,
    parameters: list[th.nn.Parameter],
    ent_coef: float | th.Tensor,
    replay_data: ReplayBufferSamples | DictReplayBufferSamples,
) -> str:
    """The first quantity, in the order the update computes them, that is not finite or out of float32's range."""
    if not _is_finite(replay_data.rewards):
        return (
            "the sampled rewards contain NaN or Inf: the environment returned them. Wrap it in "
            "stable_baselines3.common.vec_env.VecCheckNan(env, raise_exception=True) to stop at the faulty step."
        )
    cause = _input_or_parameter_cause(
        "sampled observations", [replay_data.observations, replay_data.next_observations], {name: parameters}
    )
    if cause is not None:
        return cause
    if name == "temperature":
        return (
            "the policy's entropy estimate or target_entropy is not finite (the temperature loss is "
            "log(alpha) * (entropy - target_entropy)). Pass a finite target_entropy."
        )
    rewards = replay_data.rewards
    return (
        f"the temperature ent_coef={float(ent_coef):g} is out of scale with the rewards (this minibatch: "
        f"{rewards.min().item():.3g} to {rewards.max().item():.3g}): Q / ent_coef and the soft value overflow "
        "float32. Choose ent_coef on the scale of the rewards (the reference code's 1 / reward_scale, "
        "e.g. 0.1 to 1 for rewards of order 1) or rescale the rewards (e.g. VecNormalize(norm_reward=True))."
    )


def _input_or_parameter_cause(
    what: str,
    observations: list[th.Tensor | dict[str, th.Tensor]],
    parameters: Mapping[str, Iterable[th.Tensor]],
) -> str | None:
    """The observations (non-finite, or beyond ``OBSERVATION_SCALE_LIMIT``) or the first of the named
    parameter groups beyond ``PARAMETER_SCALE_LIMIT``, as a likely cause; None if neither."""
    if not all(_is_finite(batch) for batch in observations):
        return (
            f"the {what} contain NaN or Inf: the environment returned them. Wrap it in "
            "stable_baselines3.common.vec_env.VecCheckNan(env, raise_exception=True) to stop at the faulty step."
        )
    observation_scale = max(_largest_magnitude(batch) for batch in observations)
    if observation_scale > OBSERVATION_SCALE_LIMIT:
        return (
            f"the {what} reach |{observation_scale:.3g}|: the networks' outputs overflow float32 at this "
            "scale. Normalize the observations (e.g. VecNormalize(env, norm_obs=True)) or rescale them in the environment."
        )
    for name, group in parameters.items():
        parameter_scale = _largest_magnitude(group)
        if parameter_scale > PARAMETER_SCALE_LIMIT:
            return (
                f"the {name} parameters reach |{parameter_scale:.3g}|: the previous optimizer steps moved them too far "
                "(Adam moves each parameter by up to the learning rate per step). Lower learning_rate (e.g. 1e-3)."
            )
    return None


def check_finite_acting(
    log_weights: th.Tensor,
    observations: th.Tensor | dict[str, th.Tensor],
    parameters: Mapping[str, Iterable[th.Tensor]],
    ent_coef: float | th.Tensor,
) -> None:
    """Refuse to act by resampling when the importance weights are not finite (NaN, +Inf, or all -Inf at a state).

    Resampling draws a candidate with probability proportional to ``exp(Q(s, a) / alpha) / q(a)``;
    a soft Q-value that overflows (a critic blown up by a learning rate too large, observations far
    out of scale, a temperature out of scale with the rewards) leaves no distribution to draw from.

    :param log_weights: the candidates' log importance weights, ``[batch, M]`` (nats).
    :param observations: the acted states, as the policy received them.
    :param parameters: the networks the weights came from, by name (``"critic"``, ``"sampler"``).
    :param ent_coef: the temperature ``alpha`` (reward units): a float, or a tensor of one element (read
        only for the message).
    :raises FloatingPointError: if a weight is NaN or +Inf, or all of a state's are -Inf; the message names the likely cause.
    """
    if bool(th.isfinite(log_weights.amax(dim=-1)).all()):  # no NaN, no +Inf, and a candidate of weight > 0 per state
        return
    cause = _input_or_parameter_cause("observations", [observations], parameters) or (
        f"the temperature ent_coef={float(ent_coef):g} is out of scale with the soft Q-values (Q / ent_coef overflows "
        "float32). Choose ent_coef on the scale of the rewards."
    )
    raise FloatingPointError(
        "SQL cannot act by resampling: the importance weights exp(Q / alpha) / q at the acted state are not "
        f"finite. Likely cause: {cause} Nothing was changed; policy.acting_n_candidates = 0 acts with the sampler alone."
    )


def check_model_archive(path: str | pathlib.Path) -> None:
    """Refuse a file that is not a complete Stable-Baselines3 model archive, before loading it.

    SB3 itself answers a truncated archive with a bare ``AssertionError``; this names the file and
    the problem. File-like objects are left to SB3.

    :param path: the path given to ``load`` (``".zip"`` is appended when the path does not
        exist, as in SB3).
    :raises FileNotFoundError: if neither the path nor the path with ``".zip"`` exists.
    :raises ValueError: if the file is not a zip archive, is truncated or corrupted (a member fails
        its CRC check), or lacks the ``data`` / ``policy.pth`` members of an SB3 model.
    """
    path = pathlib.Path(path)
    if not path.exists():
        path = pathlib.Path(f"{path}.zip")
    if not path.exists():
        raise FileNotFoundError(f"No model file at {os.fspath(path)!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{os.fspath(path)!r} is not a Stable-Baselines3 model archive (not a zip file, or truncated): "
            "pass the .zip written by model.save() or a CheckpointCallback."
        )
    with zipfile.ZipFile(path) as archive:
        missing = [member for member in ARCHIVE_MEMBERS if member not in archive.namelist()]
        if missing:
            raise ValueError(
                f"{os.fspath(path)!r} is not a complete Stable-Baselines3 model archive (truncated, or not written "
                f"by model.save()): it lacks the members {missing}."
            )
        corrupted = archive.testzip()
    if corrupted is not None:
        raise ValueError(f"{os.fspath(path)!r} is corrupted: its member {corrupted!r} fails the CRC check.")


def check_transitions(
    observation_space: spaces.Space,
    num_timesteps: int,
    observations: np.ndarray | dict[str, np.ndarray],
    next_observations: np.ndarray | dict[str, np.ndarray],
    rewards: np.ndarray,
    terminal_observations: dict[int, np.ndarray | dict[str, np.ndarray]],
) -> None:
    """Refuse transitions of a ``VecEnv`` step before they enter a replay buffer.

    :param observation_space: the model's observation space.
    :param num_timesteps: the model's step count after this step (named in the message).
    :param observations: the observations the step started from, ``[n_envs, *obs_shape]`` (or a dict of them).
    :param next_observations: the observations the step returned, ``[n_envs, *obs_shape]``.
    :param rewards: the rewards, ``[n_envs]``.
    :param terminal_observations: the last observation of each environment whose episode ended,
        ``obs_shape``, by environment index (SB3's ``info["terminal_observation"]``).
    :raises ValueError: if a reward or an observation is NaN or infinite, or an observation's
        shape is not the space's, naming the step, the environment and the quantity.
    """

    def refuse(quantity: str, problem: str) -> None:
        raise ValueError(
            f"SQL refused the transition of env step {num_timesteps} before storing it: {quantity} {problem}. "
            "The replay buffer holds only the transitions before it. Fix the environment (the step, reset or "
            "observation wrapper that produced it); VecCheckNan(env, raise_exception=True) finds non-finite values too."
        )

    def check(quantity: str, values: Any, space: spaces.Space, batched: bool) -> None:
        if isinstance(space, spaces.Dict):
            for key, subspace in space.spaces.items():
                check(f"{quantity}[{key!r}]", values[key], subspace, batched)
            return
        values = np.asarray(values)
        shape = values.shape[1:] if batched else values.shape
        if space.shape is not None and shape != space.shape:
            refuse(quantity, f"has the shape {shape}, but the observation space {space} has {space.shape}")
        if not np.all(np.isfinite(values)):
            where = ""
            if batched:
                env_indices = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
                where = f" of environments {env_indices.tolist()}"
            refuse(quantity + where, "contains NaN or Inf")

    rewards = np.asarray(rewards)
    if not np.all(np.isfinite(rewards)):
        refuse(f"the reward of environments {np.flatnonzero(~np.isfinite(rewards)).tolist()}", f"is not finite ({rewards})")
    check("the observation", observations, observation_space, batched=True)
    check("the next observation", next_observations, observation_space, batched=True)
    for index, observation in terminal_observations.items():
        check(f"the terminal observation of environment {index}", observation, observation_space, batched=False)


class ObservationShapeCheck(gym.Wrapper):
    """Refuse an observation whose shape is not its space's, at ``reset`` and ``step`` (ValueError).

    ``DummyVecEnv`` copies each observation into an array of the space's shape, so an observation of
    shape ``(1,)`` for a space of shape ``(3,)`` would be broadcast silently; ``SQL`` wraps the
    Gymnasium environments it is given in this check. Only the shapes of ``Box``, ``MultiBinary``
    and ``MultiDiscrete`` spaces (also inside a ``Dict``) are checked.

    :param env: the environment.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.steps = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        self._check(observation, "reset()")
        return observation, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        self.steps += 1
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._check(observation, f"step() number {self.steps} of this environment")
        return observation, reward, terminated, truncated, info

    def _check(self, observation: Any, where: str) -> None:
        for name, value, space in _shaped_leaves(observation, self.observation_space):
            if np.shape(value) != space.shape:
                raise ValueError(
                    f"The environment's {where} returned an observation{name} of shape {np.shape(value)}, but its "
                    f"observation space {space} has the shape {space.shape}: it would be broadcast into the replay "
                    "buffer. Fix the environment's observation or its observation_space."
                )


def _shaped_leaves(observation: Any, space: spaces.Space, name: str = "") -> list[tuple[str, Any, spaces.Space]]:
    if isinstance(space, spaces.Dict):
        return [
            leaf
            for key, subspace in space.spaces.items()
            for leaf in _shaped_leaves(observation[key], subspace, f"{name}[{key!r}]")
        ]
    if isinstance(space, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)):
        return [(name, observation, space)]
    return []

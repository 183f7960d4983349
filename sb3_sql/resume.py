"""Checkpoints from which an interrupted training run resumes exactly.

SB3's ``CheckpointCallback`` saves the model in ``on_step``, between ``env.step()`` and the
moment the transition is stored (``_last_obs`` is one step old and the replay buffer lacks the
step), and it saves neither the random number generators nor the environment's state; resuming
from it continues a *different* run. ``ResumableCheckpointCallback`` saves where the model, the
replay buffer and the environment agree, and ``load_checkpoint`` restores the rest:

* when: at the start of a rollout (after the previous ``train()``, before the next
  ``env.step()``) at which every environment starts an episode, at least ``save_freq`` steps
  after the previous checkpoint, or at ``2 * save_freq`` steps if no such rollout start came;
* the environment: its state inside an episode cannot be saved in general (MuJoCo environments
  pickle as fresh copies), so at a checkpoint every environment is reset with a seed drawn from
  NumPy's global generator; ``load_checkpoint`` resets the new environment with the same seed
  (Gymnasium's ``reset(seed=...)`` is deterministic) and checks that it returns the same
  observations. At an episode boundary this only redraws the initial state; a checkpoint taken
  at ``2 * save_freq`` cuts the running episodes short, which off-policy learning tolerates (no
  transition is marked terminal; the episodes are missing from the episode statistics);
* the random number generators: Python's ``random``, NumPy's global generator (replay buffer
  sampling), torch's (sampler noise, SVGD and soft-value particles, also CUDA's when present) and
  the action space's (uniform warm-up actions), which ``load`` re-seeds otherwise;
* the rest (``num_timesteps``, ``_n_updates``, ``_episode_num``, ``_last_obs``, optimizer states,
  the replay buffer, ``VecNormalize`` statistics) is SB3's own ``save`` / ``save_replay_buffer``.
"""

import glob
import os
import pickle
import random
import re
import warnings
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.vec_env import VecNormalize, unwrap_vec_normalize

from sb3_sql.sql import SQL


def get_rng_states(model: BaseAlgorithm) -> dict[str, Any]:
    """The states of every random number generator a training step of an SB3 model draws from.

    :param model: the model whose action space generator is read.
    :return: a picklable dict for ``set_rng_states``.
    """
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": th.get_rng_state(),
        "cuda": th.cuda.get_rng_state_all() if th.cuda.is_available() else None,
        "action_space": model.action_space.np_random.bit_generator.state,
    }


def set_rng_states(model: BaseAlgorithm, states: dict[str, Any]) -> None:
    """Restore the generator states saved by ``get_rng_states``.

    :param model: the model whose action space generator is set.
    :param states: the dict returned by ``get_rng_states``.
    """
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    th.set_rng_state(states["torch"])
    if states["cuda"] is not None and th.cuda.is_available():
        th.cuda.set_rng_state_all(states["cuda"])
    model.action_space.np_random.bit_generator.state = states["action_space"]


class ResumableCheckpointCallback(CheckpointCallback):
    """Save checkpoints from which ``load_checkpoint`` resumes training exactly (same seed, same device).

    Each checkpoint is four or five files in ``save_path``, named as by SB3's
    ``CheckpointCallback``: ``{name_prefix}_{N}_steps.zip`` (the model),
    ``{name_prefix}_replay_buffer_{N}_steps.pkl``, ``{name_prefix}_vecnormalize_{N}_steps.pkl``
    (with ``VecNormalize`` only) and, written last so that its presence marks a complete
    checkpoint, ``{name_prefix}_resume_state_{N}_steps.pkl`` (the generator states and the
    environment seed). Checkpoints are taken at the first rollout start at which every
    environment begins an episode, ``save_freq`` or more calls to ``env.step()`` after the
    previous one (at ``2 * save_freq`` calls at the latest), and the environments are reset there
    with a fresh seed (see the module docstring): a run with this callback is reproducible, but
    differs from the same run without it. The schedule counts from the model's ``num_timesteps``
    when ``learn`` starts, so a resumed run checkpoints (and resets) at the same steps as the
    uninterrupted run.

    The reset at a checkpoint needs SB3's ``Monitor`` to allow early resets (its default).

    :param save_freq: the least number of calls to ``env.step()`` between two checkpoints.
    :param save_path: the folder the checkpoints are written to (created if needed).
    :param name_prefix: the common prefix of the checkpoint files.
    :param verbose: 2 prints the path of each checkpoint.
    :raises ValueError: if ``save_freq < 1``.
    """

    def __init__(self, save_freq: int, save_path: str, name_prefix: str = "rl_model", verbose: int = 0):
        if save_freq < 1:
            raise ValueError(f"save_freq must be at least 1 call to env.step(), got {save_freq}")
        super().__init__(save_freq, save_path, name_prefix, save_replay_buffer=True, save_vecnormalize=True, verbose=verbose)
        self.last_checkpoint_timesteps = 0

    def _init_callback(self) -> None:
        super()._init_callback()
        self.last_checkpoint_timesteps = self.model.num_timesteps
        self.episodes_start = True  # learn() starts from a reset (or load_checkpoint's reset)

    def _on_step(self) -> bool:
        # CheckpointCallback saves here, before the step's transition is stored: not a point to resume from.
        self.episodes_start = bool(np.all(self.locals["dones"]))
        return True

    def _on_rollout_start(self) -> None:
        env = self.model.get_env()
        assert env is not None
        elapsed = (self.model.num_timesteps - self.last_checkpoint_timesteps) // env.num_envs
        if elapsed >= self.save_freq and (self.episodes_start or elapsed >= 2 * self.save_freq):
            self._save_checkpoint()

    def _save_checkpoint(self) -> None:
        env = self.model.get_env()
        assert env is not None
        env_seed = int(np.random.randint(2**31 - env.num_envs))
        env.seed(env_seed)
        self.model._last_obs = env.reset()  # type: ignore[assignment]
        vec_normalize = self.model.get_vec_normalize_env()
        if vec_normalize is not None:
            self.model._last_original_obs = vec_normalize.get_original_obs()
        self.num_timesteps = self.model.num_timesteps
        self.model.save(self._checkpoint_path(extension="zip"))
        self.model.save_replay_buffer(self._checkpoint_path("replay_buffer_", extension="pkl"))  # type: ignore[attr-defined]
        if vec_normalize is not None:
            vec_normalize.save(self._checkpoint_path("vecnormalize_", extension="pkl"))
        state_path = self._checkpoint_path("resume_state_", extension="pkl")
        with open(state_path + ".tmp", "wb") as file:
            pickle.dump({"env_seed": env_seed, "rng": get_rng_states(self.model)}, file)
        os.replace(state_path + ".tmp", state_path)  # atomic: a killed save leaves no resume_state file
        self.last_checkpoint_timesteps = self.model.num_timesteps
        if self.verbose >= 2:
            print(f"Saving resumable checkpoint {state_path}")


def latest_checkpoint(save_path: str, name_prefix: str = "rl_model") -> int:
    """The step count of the newest complete checkpoint in ``save_path``.

    :param save_path: the folder given to ``ResumableCheckpointCallback``.
    :param name_prefix: the prefix given to ``ResumableCheckpointCallback``.
    :return: ``N`` of the newest ``{name_prefix}_resume_state_{N}_steps.pkl``.
    :raises FileNotFoundError: if there is none.
    """
    pattern = re.compile(re.escape(name_prefix) + r"_resume_state_(\d+)_steps\.pkl$")
    steps = [
        int(match.group(1))
        for path in glob.glob(os.path.join(glob.escape(save_path), "*.pkl"))
        if (match := pattern.search(os.path.basename(path)))
    ]
    if not steps:
        raise FileNotFoundError(
            f"No complete checkpoint {name_prefix}_resume_state_*_steps.pkl in {save_path!r}: "
            "was the run saved with ResumableCheckpointCallback and this name_prefix?"
        )
    return max(steps)


def load_checkpoint(
    save_path: str,
    env: GymEnv,
    name_prefix: str = "rl_model",
    num_timesteps: int | None = None,
    model_class: type[BaseAlgorithm] = SQL,
    **load_kwargs: Any,
) -> BaseAlgorithm:
    """Load a checkpoint of ``ResumableCheckpointCallback`` so that training continues exactly.

    Continue with ``model.learn(total_timesteps - model.num_timesteps, reset_num_timesteps=False,
    callback=ResumableCheckpointCallback(...same arguments...))``: on the same device, with the
    same seed and the environment built the same way, the parameters then equal those of the
    uninterrupted run at every step.

    :param save_path: the folder given to ``ResumableCheckpointCallback``.
    :param env: the training environment, built as for the interrupted run but without
        ``VecNormalize`` (its statistics are loaded from the checkpoint).
    :param name_prefix: the prefix given to ``ResumableCheckpointCallback``.
    :param num_timesteps: which checkpoint; the newest complete one by default.
    :param model_class: the algorithm class (any off-policy SB3 algorithm).
    :param load_kwargs: passed to ``model_class.load`` (``device``, ``custom_objects``, ...).
    :return: the model, its replay buffer, environment and generators as at the checkpoint.
    :raises FileNotFoundError: if the checkpoint is missing or incomplete.
    :raises ValueError: if ``env`` already has a ``VecNormalize`` while the checkpoint has one,
        or any error of ``model_class.load`` (e.g. spaces that differ from the saved ones).
    """
    if num_timesteps is None:
        num_timesteps = latest_checkpoint(save_path, name_prefix)

    def checkpoint_path(kind: str, extension: str) -> str:
        return os.path.join(save_path, f"{name_prefix}_{kind}{num_timesteps}_steps.{extension}")

    with open(checkpoint_path("resume_state_", "pkl"), "rb") as file:
        state = pickle.load(file)
    vec_normalize_path = checkpoint_path("vecnormalize_", "pkl")
    if os.path.exists(vec_normalize_path):
        env = model_class._wrap_env(env)
        if unwrap_vec_normalize(env) is not None:
            raise ValueError(f"Pass env without VecNormalize: its statistics are loaded from {vec_normalize_path!r}.")
        env = VecNormalize.load(vec_normalize_path, env)
    model = model_class.load(checkpoint_path("", "zip"), env=env, force_reset=False, **load_kwargs)
    model.load_replay_buffer(checkpoint_path("replay_buffer_", "pkl"))  # type: ignore[attr-defined]

    # Put the environment where the checkpointed run had it: reset with the same seed, without
    # updating the VecNormalize statistics a second time.
    vec_env = model.get_env()
    assert vec_env is not None
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        training, vec_normalize.training = vec_normalize.training, False
    vec_env.seed(state["env_seed"])
    observations = vec_env.reset()
    if vec_normalize is not None:
        vec_normalize.training = training
        model._last_original_obs = vec_normalize.get_original_obs()
    if not _same_observations(observations, model._last_obs):
        warnings.warn(
            f"The environment reset with seed {state['env_seed']} returns other observations than at the checkpoint "
            f"of step {num_timesteps}: training continues from the new ones, but not exactly as the interrupted run "
            "would have. Build env as for that run; its reset(seed=...) must be deterministic."
        )
    model._last_obs = observations  # type: ignore[assignment]
    set_rng_states(model, state["rng"])
    return model


def _same_observations(first: Any, second: Any) -> bool:
    if isinstance(first, dict):
        return isinstance(second, dict) and all(np.array_equal(first[key], second[key]) for key in first)
    return np.array_equal(first, second)

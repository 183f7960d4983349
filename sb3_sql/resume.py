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

Durability: each file is written to ``<name>.tmp``, flushed to disk (``fsync``) and renamed, the
resume state last, so that a run killed at any point leaves complete checkpoints and files that
no checkpoint names as complete; ``load_checkpoint`` falls back to the newest checkpoint that
loads. The resume state is JSON and arrays in a NumPy ``.npz`` read with ``allow_pickle=False``:
reading it runs no code. The model zip and the replay buffer are SB3's formats, which are
pickles: loading a checkpoint runs code stored in it; load only checkpoints you wrote.
"""

import glob
import hashlib
import json
import os
import pickle
import random
import re
import warnings
from collections.abc import Callable
from typing import IO, Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, unwrap_vec_normalize

from sb3_sql.sql import SQL

#: Version of the resume-state file's layout (``{name_prefix}_resume_state_{N}_steps.npz``).
RESUME_STATE_FORMAT = 1


def get_rng_states(model: BaseAlgorithm) -> dict[str, Any]:
    """The states of every random number generator a training step of an SB3 model draws from.

    :param model: the model whose action space generator is read.
    :return: a dict for ``set_rng_states`` (and ``save_resume_state``).
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


def _to_json(value: Any) -> Any:
    """Generator states as JSON values: NumPy arrays become ``{"ndarray": [...], "dtype": ...}``."""
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "dtype"}:
            return np.array(value["ndarray"], dtype=value["dtype"])
        return {key: _from_json(item) for key, item in value.items()}
    return value


def save_resume_state(file: IO[bytes], model: BaseAlgorithm, env_seed: int, file_digests: dict[str, str]) -> None:
    """Write what ``load_checkpoint`` needs beyond SB3's files, as JSON and arrays in a NumPy ``.npz``.

    :param file: a binary file open for writing.
    :param model: the model whose generators (``get_rng_states``) and environment count are saved.
    :param env_seed: the seed the environments were reset with at the checkpoint.
    :param file_digests: the SHA-256 digest of each other file of the checkpoint, by file name.
    """
    states = get_rng_states(model)
    env = model.get_env()
    assert env is not None
    version, python_state, gauss = states["python"]
    _, numpy_key, numpy_pos, numpy_has_gauss, numpy_cached_gaussian = states["numpy"]
    arrays = {"numpy_key": numpy_key, "torch": states["torch"].numpy()}
    cuda_states = states["cuda"] or []
    arrays.update({f"cuda_{index}": state.numpy() for index, state in enumerate(cuda_states)})
    metadata = {
        "format": RESUME_STATE_FORMAT,
        "num_timesteps": model.num_timesteps,
        "num_envs": env.num_envs,
        "env_seed": env_seed,
        "python": [version, list(python_state), gauss],
        "numpy": [int(numpy_pos), int(numpy_has_gauss), float(numpy_cached_gaussian)],
        "cuda_devices": None if states["cuda"] is None else len(cuda_states),
        "action_space": _to_json(states["action_space"]),
        "files": file_digests,
    }
    np.savez(file, metadata=np.array(json.dumps(metadata)), **arrays)


def read_resume_state(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a resume state written by ``save_resume_state``, without running code (``allow_pickle=False``).

    :param path: the ``.npz`` file.
    :return: its metadata (``num_timesteps``, ``num_envs``, ``env_seed``, ``files``) and the generator states
        for ``set_rng_states``.
    :raises ValueError: if the file is not a resume state of this format (or holds pickled objects).
    :raises OSError: if it cannot be read.
    """
    with np.load(path, allow_pickle=False) as arrays:
        metadata = json.loads(str(arrays["metadata"]))
        if metadata.get("format") != RESUME_STATE_FORMAT:
            raise ValueError(f"{path!r} is a resume state of format {metadata.get('format')}, not {RESUME_STATE_FORMAT}")
        version, python_state, gauss = metadata["python"]
        numpy_pos, numpy_has_gauss, numpy_cached_gaussian = metadata["numpy"]
        cuda_devices = metadata["cuda_devices"]
        states = {
            "python": (version, tuple(python_state), gauss),
            "numpy": ("MT19937", arrays["numpy_key"], numpy_pos, numpy_has_gauss, numpy_cached_gaussian),
            "torch": th.from_numpy(arrays["torch"].copy()),
            "cuda": None
            if cuda_devices is None
            else [th.from_numpy(arrays[f"cuda_{index}"].copy()) for index in range(cuda_devices)],
            "action_space": _from_json(metadata["action_space"]),
        }
    return metadata, states


def _write_durably(path: str, write: Callable[[IO[bytes]], Any]) -> str:
    """Write ``path`` through ``write(file)`` to ``path + ".tmp"``, flush it to disk, then rename it (atomic).

    :return: the SHA-256 digest of the file (hexadecimal).
    """
    temporary = path + ".tmp"
    with open(temporary, "w+b") as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())
        file.seek(0)
        digest = _sha256(file)
    os.replace(temporary, path)
    return digest


def _sha256(file: IO[bytes]) -> str:
    """The SHA-256 digest (hexadecimal) of an open file's bytes from its current position."""
    digest = hashlib.sha256()
    while chunk := file.read(2**20):
        digest.update(chunk)
    return digest.hexdigest()


def _fsync_directory(path: str) -> None:
    """Flush a folder's entries (the renames) to disk, where the system allows it (POSIX)."""
    if os.name == "posix":
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _checkpoint_files(save_path: str, name_prefix: str) -> dict[int, list[str]]:
    """The files (complete or not, ``.tmp`` included) of each checkpoint step count in ``save_path``."""
    pattern = re.compile(
        re.escape(name_prefix) + r"_(?:replay_buffer_|vecnormalize_|resume_state_)?(\d+)_steps\.(?:zip|pkl|npz)(?:\.tmp)?$"
    )
    files: dict[int, list[str]] = {}
    for path in glob.glob(os.path.join(glob.escape(save_path), glob.escape(name_prefix) + "_*")):
        if match := pattern.match(os.path.basename(path)):
            files.setdefault(int(match.group(1)), []).append(path)
    return files


class ResumableCheckpointCallback(CheckpointCallback):
    """Save checkpoints from which ``load_checkpoint`` resumes training exactly (same seed, same device).

    Each checkpoint is four or five files in ``save_path``, named as by SB3's
    ``CheckpointCallback``: ``{name_prefix}_{N}_steps.zip`` (the model),
    ``{name_prefix}_replay_buffer_{N}_steps.pkl``, ``{name_prefix}_vecnormalize_{N}_steps.pkl``
    (with ``VecNormalize`` only) and, written last so that its presence marks a complete
    checkpoint, ``{name_prefix}_resume_state_{N}_steps.npz`` (the generator states, the environment
    seed and count; JSON and arrays, see ``read_resume_state``). Each file is written to a
    temporary name, flushed to disk and renamed. The replay buffer is saved at its full capacity
    (SB3's ``save_replay_buffer`` pickles the whole arrays): about ``buffer_size`` times the bytes of
    one transition per checkpoint whatever the number of steps done; set ``keep_last`` to bound the
    disk space.

    Checkpoints are taken at the first rollout start at which every
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
    :param keep_last: keep only the newest ``keep_last`` complete checkpoints: after each
        checkpoint, the files of older ones (and those left by interrupted saves) are deleted,
        resume state first. ``None`` (default) keeps every checkpoint, as SB3's callback does. Keep
        at least 2 for ``load_checkpoint`` to have one to fall back to.
    :param verbose: 2 prints the path of each checkpoint.
    :raises ValueError: if ``save_freq < 1`` or ``keep_last < 1``.
    """

    def __init__(
        self,
        save_freq: int,
        save_path: str,
        name_prefix: str = "rl_model",
        keep_last: int | None = None,
        verbose: int = 0,
    ):
        if save_freq < 1:
            raise ValueError(f"save_freq must be at least 1 call to env.step(), got {save_freq}")
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"keep_last must be at least 1 checkpoint (None keeps all), got {keep_last}")
        super().__init__(save_freq, save_path, name_prefix, save_replay_buffer=True, save_vecnormalize=True, verbose=verbose)
        self.keep_last = keep_last
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
        writers: dict[str, Callable[[IO[bytes]], Any]] = {
            self._checkpoint_path(extension="zip"): self.model.save,  # type: ignore[dict-item]  # a file too
            self._checkpoint_path("replay_buffer_", extension="pkl"): self.model.save_replay_buffer,  # type: ignore[attr-defined]
        }
        if vec_normalize is not None:
            # As VecNormalize.save, which takes only a path.
            writers[self._checkpoint_path("vecnormalize_", extension="pkl")] = lambda file: pickle.dump(vec_normalize, file)
        digests = {os.path.basename(path): _write_durably(path, write) for path, write in writers.items()}
        # Last: its presence marks the checkpoint complete.
        state_path = self._checkpoint_path("resume_state_", extension="npz")
        _write_durably(state_path, lambda file: save_resume_state(file, self.model, env_seed, digests))
        _fsync_directory(self.save_path)
        self.last_checkpoint_timesteps = self.model.num_timesteps
        if self.verbose >= 2:
            print(f"Saving resumable checkpoint {state_path}")
        if self.keep_last is not None:
            self._remove_old_checkpoints()

    def _remove_old_checkpoints(self) -> None:
        """Delete every checkpoint file older than the newest ``keep_last`` complete checkpoints."""
        assert self.keep_last is not None
        complete = complete_checkpoints(self.save_path, self.name_prefix)
        if len(complete) <= self.keep_last:
            return
        oldest_kept = complete[-self.keep_last]
        for steps, paths in _checkpoint_files(self.save_path, self.name_prefix).items():
            if steps < oldest_kept:
                # The resume state first: a deletion cut short leaves an incomplete checkpoint, never a false one.
                for path in sorted(paths, key=lambda path: "_resume_state_" not in path):
                    os.remove(path)


def complete_checkpoints(save_path: str, name_prefix: str = "rl_model") -> list[int]:
    """The step counts of the complete checkpoints in ``save_path``, oldest first.

    :param save_path: the folder given to ``ResumableCheckpointCallback``.
    :param name_prefix: the prefix given to ``ResumableCheckpointCallback``.
    :return: ``N`` of each ``{name_prefix}_resume_state_{N}_steps.npz``, sorted.
    """
    pattern = re.compile(re.escape(name_prefix) + r"_resume_state_(\d+)_steps\.npz$")
    return sorted(
        int(match.group(1))
        for path in glob.glob(os.path.join(glob.escape(save_path), "*.npz"))
        if (match := pattern.match(os.path.basename(path)))
    )


def latest_checkpoint(save_path: str, name_prefix: str = "rl_model") -> int:
    """The step count of the newest complete checkpoint in ``save_path``.

    :param save_path: the folder given to ``ResumableCheckpointCallback``.
    :param name_prefix: the prefix given to ``ResumableCheckpointCallback``.
    :return: ``N`` of the newest ``{name_prefix}_resume_state_{N}_steps.npz``.
    :raises FileNotFoundError: if there is none.
    """
    steps = complete_checkpoints(save_path, name_prefix)
    if not steps:
        raise FileNotFoundError(
            f"No complete checkpoint {name_prefix}_resume_state_*_steps.npz in {save_path!r}: "
            "was the run saved with ResumableCheckpointCallback and this name_prefix? (Resume states in the "
            "earlier .pkl format are not read: unpickling them could run code.)"
        )
    return steps[-1]


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

    Without ``num_timesteps``, the newest complete checkpoint that loads: a damaged one (a file
    missing, truncated or changed on disk: each file's SHA-256 digest, recorded in the resume state,
    is checked before it is read) is skipped with a warning naming the error, and the one before
    it is tried. Loading runs code stored in the model zip and the replay buffer (SB3's pickles):
    load only checkpoints you wrote.

    :param save_path: the folder given to ``ResumableCheckpointCallback``.
    :param env: the training environment, built as for the interrupted run but without
        ``VecNormalize`` (its statistics are loaded from the checkpoint).
    :param name_prefix: the prefix given to ``ResumableCheckpointCallback``.
    :param num_timesteps: which checkpoint (no fallback); the newest complete one that loads by default.
    :param model_class: the algorithm class (any off-policy SB3 algorithm).
    :param load_kwargs: passed to ``model_class.load`` (``device``, ``custom_objects``, ...).
    :return: the model, its replay buffer, environment and generators as at the checkpoint.
    :raises FileNotFoundError: if there is no complete checkpoint (or not the one asked for).
    :raises ValueError: if ``env`` has another number of environments than the checkpointed run
        (checked before anything is loaded), if ``env`` already has a ``VecNormalize`` while the
        checkpoint has one, if no complete checkpoint loads (the newest one's error is chained), or
        any error of ``model_class.load`` for the checkpoint asked for (e.g. spaces that differ from
        the saved ones).
    """
    vec_env = model_class._wrap_env(env)
    candidates = [num_timesteps] if num_timesteps is not None else complete_checkpoints(save_path, name_prefix)[::-1]
    if not candidates:
        latest_checkpoint(save_path, name_prefix)  # raises FileNotFoundError
    errors = []
    for steps in candidates:
        try:
            return _load_checkpoint_files(save_path, vec_env, name_prefix, steps, model_class, load_kwargs)
        except _EnvironmentMismatch as mismatch:
            raise ValueError(str(mismatch)) from None
        except Exception as error:
            if num_timesteps is not None:
                raise
            errors.append(error)
            warnings.warn(
                f"The checkpoint of step {steps} in {save_path!r} does not load ({type(error).__name__}: {error}); "
                "trying the one before it.",
                stacklevel=2,
            )
    raise ValueError(
        f"No complete checkpoint in {save_path!r} loads (tried steps {candidates}); the newest one's error is chained."
    ) from errors[0]


class _EnvironmentMismatch(Exception):
    """The environment given to ``load_checkpoint`` does not fit the checkpoint (not a damaged file)."""


def _load_checkpoint_files(
    save_path: str,
    vec_env: VecEnv,
    name_prefix: str,
    num_timesteps: int,
    model_class: type[BaseAlgorithm],
    load_kwargs: dict[str, Any],
) -> BaseAlgorithm:
    def checkpoint_path(kind: str, extension: str) -> str:
        return os.path.join(save_path, f"{name_prefix}_{kind}{num_timesteps}_steps.{extension}")

    metadata, rng_states = read_resume_state(checkpoint_path("resume_state_", "npz"))
    if metadata["num_envs"] != vec_env.num_envs:
        raise _EnvironmentMismatch(
            f"The checkpoint of step {num_timesteps} was saved with {metadata['num_envs']} environments, env has "
            f"{vec_env.num_envs}: the replay buffer and the last observations are per environment. Build env with "
            f"{metadata['num_envs']} environments (e.g. make_vec_env(env_id, n_envs={metadata['num_envs']}))."
        )
    for name, digest in metadata["files"].items():
        # Before any of them is read: a damaged file is skipped, never unpickled.
        with open(os.path.join(save_path, name), "rb") as file:
            intact = _sha256(file) == digest
        if not intact:
            raise ValueError(f"{name!r} is damaged: its SHA-256 digest differs from the one recorded at the checkpoint")
    vec_normalize_path = checkpoint_path("vecnormalize_", "pkl")
    env: VecEnv = vec_env
    if os.path.exists(vec_normalize_path):
        if unwrap_vec_normalize(vec_env) is not None:
            raise _EnvironmentMismatch(
                f"Pass env without VecNormalize: its statistics are loaded from {vec_normalize_path!r}."
            )
        env = VecNormalize.load(vec_normalize_path, vec_env)
    model = model_class.load(checkpoint_path("", "zip"), env=env, force_reset=False, **load_kwargs)
    model.load_replay_buffer(checkpoint_path("replay_buffer_", "pkl"))  # type: ignore[attr-defined]

    # Put the environment where the checkpointed run had it: reset with the same seed, without
    # updating the VecNormalize statistics a second time.
    model_env = model.get_env()
    assert model_env is not None
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        training, vec_normalize.training = vec_normalize.training, False
    model_env.seed(metadata["env_seed"])
    observations = model_env.reset()
    if vec_normalize is not None:
        vec_normalize.training = training
        model._last_original_obs = vec_normalize.get_original_obs()
    if not _same_observations(observations, model._last_obs):
        warnings.warn(
            f"The environment reset with seed {metadata['env_seed']} returns other observations than at the "
            f"checkpoint of step {num_timesteps}: training continues from the new ones, but not exactly as the "
            "interrupted run would have. Build env as for that run; its reset(seed=...) must be deterministic.",
            stacklevel=3,
        )
    model._last_obs = observations  # type: ignore[assignment]
    set_rng_states(model, rng_states)
    return model


def _same_observations(first: Any, second: Any) -> bool:
    if isinstance(first, dict):
        return isinstance(second, dict) and all(np.array_equal(first[key], second[key]) for key in first)
    return np.array_equal(first, second)

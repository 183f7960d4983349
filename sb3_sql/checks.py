"""Checks that stop SQL before a numerical fault or a bad file can damage a model.

``check_finite_update`` runs before every optimizer step of ``SQL.train()``; ``check_model_archive``
runs before ``SQL.load()`` reads a file.
"""

import os
import pathlib
import zipfile
from collections.abc import Iterable

import torch as th
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples

#: Members every Stable-Baselines3 model archive holds (``BaseAlgorithm.save``).
ARCHIVE_MEMBERS = ("data", "policy.pth")


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
    the last good model. The message names the likely cause: non-finite rewards or observations
    in the minibatch (found with SB3's ``VecCheckNan``), or else a temperature out of scale with
    the rewards (``Q / alpha`` and the soft value ``alpha * log sum exp(Q / alpha)`` overflow
    float32 for a tiny or huge ``alpha`` or rewards near 1e30).

    :param name: which update this is (``"critic"`` or ``"sampler"``), used in the message.
    :param loss: the scalar loss that was just back-propagated.
    :param parameters: the parameters the optimizer is about to update (their ``.grad`` is read).
    :param ent_coef: the temperature ``alpha`` (reward units): a float, or a tensor of one element
        (read only for the message).
    :param replay_data: the minibatch the loss was computed on (rewards ``[batch, 1]``).
    :raises FloatingPointError: if the loss or a gradient is not finite.
    """
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    finite_gradients = th.isfinite(th.cat([gradient.flatten() for gradient in gradients])).all()
    if bool(th.isfinite(loss) & finite_gradients):  # the call's one device synchronisation when all is finite
        return
    what = f"the {name} loss is {loss.item()}" if not _is_finite(loss) else f"the {name} gradients are not finite"
    if not _is_finite(replay_data.rewards):
        cause = (
            "the sampled rewards contain NaN or Inf: the environment returned them. Wrap it in "
            "stable_baselines3.common.vec_env.VecCheckNan(env, raise_exception=True) to stop at the faulty step."
        )
    elif not (_is_finite(replay_data.observations) and _is_finite(replay_data.next_observations)):
        cause = (
            "the sampled observations contain NaN or Inf: the environment returned them. Wrap it in "
            "stable_baselines3.common.vec_env.VecCheckNan(env, raise_exception=True) to stop at the faulty step."
        )
    else:
        rewards = replay_data.rewards
        cause = (
            f"the temperature ent_coef={float(ent_coef):g} is out of scale with the rewards (this minibatch: "
            f"{rewards.min().item():.3g} to {rewards.max().item():.3g}): Q / ent_coef and the soft value overflow "
            "float32. Choose ent_coef on the scale of the rewards (the reference code's 1 / reward_scale, "
            "e.g. 0.1 to 1 for rewards of order 1) or rescale the rewards (e.g. VecNormalize(norm_reward=True))."
        )
    raise FloatingPointError(
        f"SQL stopped before the {name} optimizer step: {what}. Likely cause: {cause} "
        f"The {name} parameters were not updated by this step and hold finite values; model.save() keeps them."
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

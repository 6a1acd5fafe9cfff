"""Whether a file is a checkpoint a run can use, and which one a run resumes from.

Every check reads the file safely (`torch.load(weights_only=True)`, memory-
mapped, so a folder of checkpoints is looked through without reading their
tensors) and answers in one line that names the file, why it cannot be used
and what to do.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mwvae import UntrustedFileError, unsafe_checkpoint_message

log = logging.getLogger(__name__)

# Not resumed from by `ckpt_path=last`: the state before a non-finite step
# (resuming it repeats the step; `mwvae.callbacks.NonFiniteGuard`).
NOT_RESUMED = "nonfinite-step*.ckpt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names it, why, and what to do."""


class IncompleteCheckpointError(CheckpointError):
    """A file that is not a whole zip archive (truncated, or not a checkpoint)."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at `path` (tensors memory-mapped); CheckpointError when
    it is not one, UntrustedFileError when it holds more than tensors and
    plain values."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise IncompleteCheckpointError(
            f"{path} is not a complete checkpoint: truncated (a full disk, a killed copy) "
            "or not a checkpoint at all"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise UntrustedFileError(unsafe_checkpoint_message(path)) from None
    except Exception as error:  # a damaged archive
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{path} cannot be read ({reason})") from None
    if not isinstance(checkpoint, dict) or "mwvae_model_class" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint written by mwvae.train")
    return checkpoint


def class_name(model: torch.nn.Module) -> str:
    """What checkpoints record as `mwvae_model_class` (`mwvae.load_model` reads it)."""
    return f"{type(model).__module__}.{type(model).__qualname__}"


def mismatch(checkpoint: dict[str, Any], model: torch.nn.Module) -> str | None:
    """Why the checkpoint cannot resume training `model` (None: it can): another
    model class, other modalities, another latent size, parameters of other shapes."""
    written, wanted = checkpoint["mwvae_model_class"], class_name(model)
    if written != wanted:
        return f"it was written by {written.rpartition('.')[2]}, this run trains {wanted.rpartition('.')[2]}"
    hparams = checkpoint.get("hyper_parameters", {})
    theirs, mine = sorted(hparams.get("modalities") or {}), sorted(model.hparams["modalities"])
    if theirs != mine:
        return f"its modalities is {theirs}, this run's is {mine}"
    if hparams.get("latent_dim") != model.hparams["latent_dim"]:
        return f"its latent size is {hparams.get('latent_dim')}, this run's is {model.latent_dim}"
    shapes = {name: tuple(t.shape) for name, t in checkpoint["state_dict"].items()}
    for name, tensor in model.state_dict().items():
        if shapes.get(name) != tuple(tensor.shape):
            return f"its parameter {name} has shape {shapes.get(name)}, this run's {tuple(tensor.shape)}"
    return None


def changed_options(checkpoint: dict[str, Any], model: torch.nn.Module) -> list[str]:
    """The model options this run sets otherwise than the checkpoint's run."""
    hparams = checkpoint.get("hyper_parameters", {})
    return [
        f"{key}: {hparams.get(key)!r} -> {value!r}"
        for key, value in model.hparams.items()
        if key not in ("modalities", "latent_dim") and hparams.get(key) != value
    ]


@dataclass(frozen=True)
class Usable:
    path: Path
    epoch: int
    step: int
    changed: list[str]


def check_for_resume(path: str | Path, model: torch.nn.Module) -> Usable:
    """The checkpoint at `path` if it can resume training `model`, or CheckpointError."""
    checkpoint = read_checkpoint(path)
    reason = mismatch(checkpoint, model)
    if reason is not None:
        raise CheckpointError(f"{path} cannot resume this run: {reason}")
    return Usable(
        Path(path),
        int(checkpoint.get("epoch", 0)),
        int(checkpoint.get("global_step", 0)),
        changed_options(checkpoint, model),
    )


def resume_from(ckpt_path: str | None, folder: Path, model: torch.nn.Module) -> Usable | None:
    """The checkpoint `ckpt_path` names, checked against `model`: `last` is the
    furthest-trained checkpoint in `folder` that loads and matches (None when
    the folder has none at all: a fresh start); the others found are reported.
    CheckpointError when nothing named can be used."""
    if ckpt_path is None:
        return None
    if ckpt_path != "last":
        return warned(check_for_resume(ckpt_path, model))
    found = sorted(set(folder.glob("*.ckpt")) - set(folder.glob(NOT_RESUMED)))
    if not found:
        log.info("ckpt_path=last: no checkpoint in %s yet, training from the start", folder)
        return None
    usable, problems, unreadable = [], [], []
    for path in found:
        try:
            usable.append(check_for_resume(path, model))
        except CheckpointError as error:
            problems.append(str(error))
            if isinstance(error, IncompleteCheckpointError):
                unreadable.append(path)
    if not usable:
        raise CheckpointError(
            f"ckpt_path=last: no checkpoint in {folder} can resume this run: "
            + "; ".join(problems)
            + ". Move them away to start afresh, or name one with ckpt_path=PATH"
        )
    best = max(usable, key=lambda c: (c.step, c.path.stat().st_mtime_ns))
    for problem in problems:
        log.warning("Skipped a checkpoint: %s; resuming from %s instead", problem, best.path.name)
    for path in unreadable:  # else Lightning saves `last-v1.ckpt` beside a broken `last.ckpt`
        log.warning("Moved the unreadable %s to %s", path.name, set_aside(path).name)
    return warned(best)


def set_aside(path: Path) -> Path:
    target = path.with_name(path.name + ".unreadable")
    path.replace(target)
    return target


def warned(usable: Usable) -> Usable:
    log.info("Resuming from %s (epoch %d, step %d)", usable.path, usable.epoch, usable.step)
    if usable.changed:
        log.warning(
            "Resuming %s with model options changed: %s",
            usable.path.name,
            "; ".join(usable.changed),
        )
    return usable

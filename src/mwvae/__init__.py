"""mwvae: multimodal VAEs aligned by the closed-form 2-Wasserstein distance."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a model is loaded: `import mwvae.config` stays light
    import torch

__version__ = "0.1.0"

# What a checkpoint's or run folder's specs may instantiate: a file that names
# anything else (`os.system`, say) could run code through Hydra's instantiate.
TRUSTED_TARGETS = ("mwvae.", "torch.optim.")


class UntrustedFileError(ValueError):
    """A checkpoint or run config that asks to run code mwvae does not trust."""


def targets(node: Any) -> Iterator[str]:
    """Every `_target_` in a nested dict/list spec."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                yield str(value)
            else:
                yield from targets(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from targets(value)


def check_targets(spec: Any, source: str | Path, trusted: tuple[str, ...] = TRUSTED_TARGETS):
    """Refuse a spec that would instantiate anything outside `trusted`."""
    foreign = sorted({t for t in targets(spec) if not t.startswith(trusted)})
    if foreign:
        raise UntrustedFileError(
            f"{source} asks to instantiate {foreign}, outside {list(trusted)}; it was not "
            "loaded. Use files written by mwvae."
        )


def load_model(ckpt_path: str | Path, map_location: str | torch.device = "cpu"):
    """The trained model of a checkpoint, in eval mode, rebuilt from the file alone.

    The file is read with `torch.load(weights_only=True)`: a checkpoint cannot
    run code, only subclasses of `MultimodalVAE` can be rebuilt, and the
    networks it names must be mwvae's. A file that is not a checkpoint raises
    `mwvae.checkpoints.CheckpointError`, saying why.
    """
    from mwvae.checkpoints import read_checkpoint
    from mwvae.models.base import MultimodalVAE

    checkpoint = read_checkpoint(ckpt_path)
    module_name, _, class_name = checkpoint["mwvae_model_class"].rpartition(".")
    if not module_name.startswith("mwvae."):
        raise ValueError(
            f"{ckpt_path}: model class {module_name}.{class_name} is not part of mwvae"
        )
    model_class = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(model_class, type) and issubclass(model_class, MultimodalVAE)):
        raise ValueError(f"{ckpt_path}: {class_name} is not a mwvae model")
    hparams = dict(checkpoint["hyper_parameters"])
    check_targets(hparams, ckpt_path)
    if hparams.get("align_weight") == 0 and not hasattr(model_class.Options, "align_weight"):
        del hparams["align_weight"]  # written when every model had the option (0 unless MW-VAE)
    model = model_class(**hparams)
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(map_location).eval()


def unsafe_checkpoint_message(ckpt_path: str | Path) -> str:
    return (
        f"{ckpt_path} is not a checkpoint mwvae can load safely: it holds objects other than "
        "tensors and plain values (a pickle that may run code), so it was not loaded. Use a "
        "checkpoint written by mwvae; do not load this file with weights_only=False."
    )


__all__ = ["UntrustedFileError", "__version__", "check_targets", "load_model"]

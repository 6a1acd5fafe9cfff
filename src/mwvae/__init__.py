"""mwvae: multimodal VAEs aligned by the closed-form 2-Wasserstein distance."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

__version__ = "0.1.0"


def load_model(ckpt_path: str | Path, map_location: str | torch.device = "cpu"):
    """The trained model of a checkpoint, in eval mode, rebuilt from the file alone.

    The file is read with `torch.load(weights_only=True)`: a checkpoint cannot
    run code, and only subclasses of `MultimodalVAE` can be rebuilt.
    """
    from mwvae.models.base import MultimodalVAE

    checkpoint = torch.load(ckpt_path, map_location=map_location, weights_only=True)
    module_name, _, class_name = checkpoint["mwvae_model_class"].rpartition(".")
    if not module_name.startswith("mwvae."):
        raise ValueError(
            f"{ckpt_path}: model class {module_name}.{class_name} is not part of mwvae"
        )
    model_class = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(model_class, type) and issubclass(model_class, MultimodalVAE)):
        raise ValueError(f"{ckpt_path}: {class_name} is not a mwvae model")
    model = model_class(**checkpoint["hyper_parameters"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


__all__ = ["__version__", "load_model"]

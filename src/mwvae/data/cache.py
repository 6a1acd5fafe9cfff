"""Tensor caches that are written atomically and verified on load.

A cache is one safetensors file (no pickle, so loading it cannot run code)
whose metadata holds a SHA-256 of its tensors. A truncated or altered file
fails verification and is rebuilt by the caller; a file lock keeps parallel
jobs from building the same cache at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from filelock import FileLock
from pytorch_lightning.utilities import rank_zero_warn
from safetensors.torch import load_file, safe_open, save_file

Tensors = dict[str, torch.Tensor]


class CorruptCacheError(RuntimeError):
    pass


def tensors_digest(tensors: Tensors) -> str:
    digest = hashlib.sha256()
    for key in sorted(tensors):
        value = tensors[key].contiguous()
        digest.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def save_tensors(path: Path, tensors: Tensors, metadata: dict[str, str] | None = None) -> None:
    """Write to a temporary file, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, tmp, metadata={**(metadata or {}), "sha256": tensors_digest(tensors)})
    os.replace(tmp, path)


def load_tensors(path: Path) -> tuple[Tensors, dict[str, str]]:
    """Load and verify a cache; raise CorruptCacheError if it does not check out."""
    try:
        with safe_open(path, framework="pt") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(path)
    except Exception as error:  # safetensors raises several types for a bad file
        raise CorruptCacheError(f"{path} is unreadable ({error})") from error
    if metadata.get("sha256") != tensors_digest(tensors):
        raise CorruptCacheError(f"{path} does not match its checksum")
    return tensors, metadata


def cached_tensors(
    path: Path, build: Callable[[], Tensors], metadata: dict[str, str] | None = None
) -> Tensors:
    """Load the cache at `path`, building (or rebuilding) it with `build()` if
    it is missing or corrupt."""
    path = Path(path)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                return load_tensors(path)[0]
            except CorruptCacheError as error:
                rank_zero_warn(f"{error}; rebuilding it.")
        tensors = build()
        save_tensors(path, tensors, metadata)
        return tensors

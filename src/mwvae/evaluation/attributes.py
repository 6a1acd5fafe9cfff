"""Whether generated captions say what their images show (the COCO demo, captions as tokens).

`caption_attributes/<S>_to_<m>/<attribute>`: for every subset S of
modalities that the model infers from (`joint`: all of them, the caption
too; `<m>` alone: the caption rewritten from itself), the share of test
examples whose caption m generated from S (`reconstruct`: greedy decoding
from the posterior mean) names exactly the colours, the coloured shapes, the
positions, or `all` of these, of its image, as the dataset reads
a caption (`caption_attributes`; the demo: `mwvae.data.coco_demo_reading`).
`caption_attributes/chance/<attribute>`: the same score of the true first
caption of the next test image, a caption written for another scene.
"""

from __future__ import annotations

import torch

from mwvae.data.coco_demo_reading import ATTRIBUTES, Attributes
from mwvae.data.loader import InMemoryLoader
from mwvae.evaluation.likelihood import inferable_subsets, subset_name
from mwvae.likelihoods import TokenSequence
from mwvae.models.base import MultimodalVAE


def agreement_shares(read: list[Attributes], truths: list[Attributes]) -> dict[str, float]:
    """For each attribute, the share of `read` that names exactly its truth's."""
    hits = [r.agreement(t) for r, t in zip(read, truths, strict=True)]
    return {a: sum(h[a] for h in hits) / len(hits) for a in ATTRIBUTES}


@torch.no_grad()
def caption_attribute_metrics(
    model: MultimodalVAE, datamodule, split: dict[str, torch.Tensor], size: int
) -> dict[str, float]:
    """The module docstring's keys; {} unless the data can read captions' attributes."""
    if not hasattr(datamodule, "caption_attributes"):
        return {}
    captions = [m for m, lik in model.likelihoods.items() if isinstance(lik, TokenSequence)]
    names = [m for m in model.modality_names if m in split]
    truths = datamodule.scene_attributes("test")
    metrics = {}
    for m in captions:
        true_captions = datamodule.caption_attributes(split[m])
        chance = agreement_shares(true_captions[1:] + true_captions[:1], truths)
        metrics |= {f"caption_attributes/chance/{a}": v for a, v in chance.items()}
        for subset in inferable_subsets(model, names):
            read: list[Attributes] = []
            for batch in InMemoryLoader(split, size, device=model.device):
                ids = model.reconstruct({o: batch[o] for o in subset})[m]
                read += datamodule.caption_attributes(ids)
            key = f"caption_attributes/{subset_name(subset, names)}_to_{m}"
            metrics |= {f"{key}/{a}": v for a, v in agreement_shares(read, truths).items()}
    return metrics

"""Whether generated captions say what their images show (the COCO demo, captions as tokens).

`caption_attributes/<S>_to_<m>/<attribute>`: for every subset S of
modalities that the model infers from (`joint`: all of them, the caption
too; `<m>` alone: the caption rewritten from itself), the share of test
examples whose caption m generated from S (`written_captions`) names
exactly the colours, the coloured shapes, the positions, or `all` of these,
of its image, as the dataset reads a caption (`caption_attributes`; the demo: `mwvae.data.coco_demo_reading`).
`caption_attributes/chance/<attribute>`: the same score of the true first
caption of the next test image, a caption written for another scene.
"""

from __future__ import annotations

from torch import Tensor

from mwvae.data.coco_demo_reading import ATTRIBUTES, Attributes
from mwvae.evaluation.written_captions import Written


def agreement_shares(read: list[Attributes], truths: list[Attributes]) -> dict[str, float]:
    """For each attribute, the share of `read` that names exactly its truth's."""
    hits = [r.agreement(t) for r, t in zip(read, truths, strict=True)]
    return {a: sum(h[a] for h in hits) / len(hits) for a in ATTRIBUTES}


def caption_attribute_metrics(
    datamodule, split: dict[str, Tensor], written: Written
) -> dict[str, float]:
    """The module docstring's keys for the captions `written` (`written_captions`)
    on the test `split`; {} unless the data can read captions' attributes."""
    if not hasattr(datamodule, "caption_attributes"):
        return {}
    truths = datamodule.scene_attributes("test")
    metrics = {}
    for m, by_source in written.items():
        true_captions = datamodule.caption_attributes(split[m])
        chance = agreement_shares(true_captions[1:] + true_captions[:1], truths)
        metrics |= {f"caption_attributes/chance/{a}": v for a, v in chance.items()}
        for source, ids in by_source.items():
            read = agreement_shares(datamodule.caption_attributes(ids), truths)
            metrics |= {f"caption_attributes/{source}_to_{m}/{a}": v for a, v in read.items()}
    return metrics

"""Images with their captions: a split of COCO-format data and its loader.

An image has any number of captions (COCO about five, an image of
incomplete data none). `CaptionedSplit` keeps every caption embedding with
the image it belongs to; `CaptionedImageLoader` batches `{image, caption}`
pairs from it, choosing the caption of each image (`CAPTION_CHOICES`), and
hides the caption of an image that has none (`mask/caption` False, the
value a placeholder row of zeros that the models never read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mwvae.data.loader import InMemoryLoader
from mwvae.data.missing import MASK_PREFIX, mask_key

MODALITIES = ("image", "caption")
# The caption of each image in training: `first` (fixed), `random` (re-drawn each
# epoch from the seed) or `all` (every image-caption pair is an example).
CAPTION_CHOICES = ("first", "random", "all")

Masks = dict[str, Tensor]


@dataclass
class CaptionedSplit:
    """Images, every caption embedding, the image row each caption belongs to
    (sorted), and the caption texts (for figures). A training image may have
    no caption: no entry of `owner` names it (see `has_caption`)."""

    images: Tensor
    captions: Tensor
    owner: Tensor
    texts: list[str]
    classes: Tensor | None = None  # per image, where the dataset knows a class (the demo)
    scenes: list | None = None  # per image, where the dataset knows what it shows (the demo)

    @property
    def caption_counts(self) -> Tensor:
        """How many captions each image has."""
        return torch.bincount(self.owner, minlength=len(self.images))

    @property
    def has_caption(self) -> Tensor:
        return self.caption_counts > 0

    @property
    def placeholder_row(self) -> int:
        """The row of `with_placeholder()` that stands in for a missing caption."""
        return len(self.captions)

    @property
    def first_caption(self) -> Tensor:
        """The row of each image's first caption (`placeholder_row` for an image without)."""
        counts = self.caption_counts
        return torch.where(counts > 0, counts.cumsum(0) - counts, self.placeholder_row)

    def with_placeholder(self) -> Tensor:
        """`captions` and, if some image has none, a row of zeros after them
        (`placeholder_row`): the value of a missing caption, which no loss
        term reads (its mask is False). Only then a copy: COCO's captions
        take hundreds of megabytes."""
        if bool(self.has_caption.all()):
            return self.captions
        return torch.cat([self.captions, self.captions.new_zeros(1, *self.captions.shape[1:])])

    def select(self, rows: Tensor) -> CaptionedSplit:
        """The images at `rows` (increasing) with their captions."""
        new_row = torch.full((len(self.images),), -1, dtype=torch.long)
        new_row[rows] = torch.arange(len(rows))
        kept = new_row[self.owner] >= 0
        return CaptionedSplit(
            images=self.images[rows],
            captions=self.captions[kept],
            owner=new_row[self.owner[kept]],
            texts=[t for t, k in zip(self.texts, kept.tolist(), strict=True) if k],
            classes=None if self.classes is None else self.classes[rows],
            scenes=None if self.scenes is None else [self.scenes[i] for i in rows.tolist()],
        )


def presence_masks(has_caption: Tensor, drawn: Masks) -> Masks:
    """`mask/image` and `mask/caption` of examples: the `drawn` masks (hidden
    modalities, see `mwvae.data.missing`; {}: none hidden), with each missing
    caption hidden too; {} when every example is complete. An example
    without a caption keeps its image whatever the draw says: it would
    observe nothing otherwise."""
    if not drawn and bool(has_caption.all()):
        return {}
    everywhere = torch.ones_like(has_caption)
    image, caption = (drawn.get(mask_key(m), everywhere) for m in MODALITIES)
    return {mask_key("image"): image | ~has_caption, mask_key("caption"): caption & has_caption}


class CaptionedImageLoader(InMemoryLoader):
    """Batches `{image, caption}` from a CaptionedSplit. With `all`, an example
    is a caption (its image repeated for each caption) or an image without
    captions; otherwise an image, with its first caption or one drawn per
    epoch from (seed, epoch). When some example misses a modality (no
    caption, or hidden by `hide(num_examples)`, the training split's hidden
    modalities), batches carry `mask/image` and `mask/caption`."""

    def __init__(
        self,
        split: CaptionedSplit,
        batch_size: int,
        choice: str,
        hide: Callable[[int], Masks] | None = None,
        **options: Any,  # InMemoryLoader's: shuffle, seed, device, rank, world_size, ...
    ):
        self.choice = choice
        self.first, self.count = split.first_caption, split.caption_counts
        if choice == "all":
            # One example per caption, in image order, and one per image without any.
            image_row = torch.repeat_interleave(
                torch.arange(len(split.images)), self.count.clamp(min=1)
            )
            caption_row = torch.full_like(image_row, split.placeholder_row)
            caption_row[split.has_caption[image_row]] = torch.arange(len(split.owner))
            rows = {"image_row": image_row, "caption_row": caption_row}
        else:
            rows = {"image_row": torch.arange(len(split.images)), "caption_row": self.first}
        has_caption = rows["caption_row"] != split.placeholder_row
        rows |= presence_masks(has_caption, hide(len(has_caption)) if hide else {})
        super().__init__(rows, batch_size, **options)
        self.images = split.images.to(self.device)
        self.captions = split.with_placeholder().to(self.device)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        # A generator: the captions are drawn at the first batch, once `set_epoch` ran.
        if self.choice == "random":  # drawn on the host, like the order
            draw = torch.rand(len(self.first), generator=self.sampler.generator(stream=11))
            # An image without captions (count 0) keeps its first: the placeholder.
            self.tensors["caption_row"] = (self.first + (draw * self.count).long()).to(self.device)
        yield from super().__iter__()

    def gather(self, index: slice | Tensor) -> dict[str, Tensor]:
        rows = super().gather(index)
        batch = {
            "image": self.images[rows["image_row"]],
            "caption": self.captions[rows["caption_row"]],
        }
        return batch | {k: v for k, v in rows.items() if k.startswith(MASK_PREFIX)}

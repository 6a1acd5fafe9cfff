"""MS-COCO as `image` (3 x S x S in [0, 1]) and `caption` (a sentence embedding).

Training draws from train2017 (minus a held-out validation share), the test
split is val2017. Each image has about five captions; `caption` chooses which
one pairs with it in training: `first` (fixed), `random` (re-drawn each epoch
from the seed) or `all` (every image-caption pair is an example). Validation
and test batches pair each image with its first caption; retrieval metrics
use every caption (`captioned[split]`).

Real data is incomplete (weak supervision, see `mwvae.data.missing`): a
train2017 image that no caption annotation names is a training example with
its caption hidden (`mask/caption` False; its value is a placeholder row of
zeros that the models never read), one example under `all` too. Validation
and test hold captioned images only: their metrics need pairs.
`paired_fraction` < 1 hides modalities of more training examples, fixed by
the seed. Training batches carry `mask/image` and `mask/caption` whenever
some example misses a modality.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from filelock import FileLock
from torch import Tensor

from mwvae.data.cache import cached_tensors
from mwvae.data.captions import CaptionEmbedder
from mwvae.data.coco_demo import COLOURS, generate_coco_demo
from mwvae.data.coco_source import (
    FOLDERS,
    Annotations,
    annotation_file,
    cached_images,
    check_layout,
    file_sha256,
    read_annotations,
)
from mwvae.data.loader import InMemoryLoader, distributed_shard, loader_device
from mwvae.data.missing import MASK_PREFIX, RANDOM, check_hiding, hidden_modalities, mask_key

log = logging.getLogger(__name__)

CAPTION_CHOICES = ("first", "random", "all")
MODALITIES = ("image", "caption")


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


def presence_masks(
    has_caption: Tensor, paired_fraction: float, unpaired_keep: str, seed: int
) -> dict[str, Tensor]:
    """`mask/image` and `mask/caption` of examples: `hidden_modalities`, with
    each missing caption hidden too; {} when every example is complete. An
    example without a caption keeps its image whatever the draw says: it
    would observe nothing otherwise."""
    drawn = hidden_modalities(len(has_caption), MODALITIES, paired_fraction, unpaired_keep, seed)
    if not drawn and bool(has_caption.all()):
        return {}
    everywhere = torch.ones_like(has_caption)
    image, caption = (drawn.get(mask_key(m), everywhere) for m in MODALITIES)
    return {mask_key("image"): image | ~has_caption, mask_key("caption"): caption & has_caption}


def embedding_cache_key(annotations_sha256: str, embedding: dict[str, Any]) -> str:
    """What the embeddings depend on: the annotation file and the language
    model, pooling and maximum length."""
    parts = [annotations_sha256, embedding["model"], embedding["pooling"], embedding["max_length"]]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def cached_caption_embeddings(
    path: Path,
    annotations: Annotations,
    embedding: dict[str, Any],
    cache_dir: Path,
    embed: Callable[[list[str]], Tensor],
) -> Tensor:
    """Every caption of the annotation file embedded once by `embed` (in
    image-id order, then annotation order); later runs load the cache and
    never call `embed`, so the language model is not even loaded."""
    key = embedding_cache_key(file_sha256(path), embedding)
    texts = [text for captions in annotations.captions for text in captions]
    cache = cached_tensors(
        Path(cache_dir) / f"coco_captions_{path.stem}_{key}.safetensors",
        lambda: {"embeddings": embed(texts)},
        {k: str(v) for k, v in embedding.items() if k in ("model", "pooling", "max_length")},
        layout={"embeddings": ((len(texts), None), torch.float32)},  # one row per caption
    )
    return cache["embeddings"]


class CaptionedImageLoader(InMemoryLoader):
    """Batches `{image, caption}` from a CaptionedSplit. With `all`, an example
    is a caption (its image repeated for each caption) or an image without
    captions; otherwise an image, with its first caption or one drawn per
    epoch from (seed, epoch). When some example misses a modality (no
    caption, or hidden by `paired_fraction` < 1, see `presence_masks`: drawn
    per example from `seed`), batches carry `mask/image` and `mask/caption`."""

    def __init__(
        self,
        split: CaptionedSplit,
        batch_size: int,
        choice: str,
        shuffle: bool,
        seed: int,
        device: torch.device | str | None = None,
        paired_fraction: float = 1.0,
        unpaired_keep: str = RANDOM,
        **shard,  # rank, world_size, equal_shards: see InMemoryLoader
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
        rows |= presence_masks(has_caption, paired_fraction, unpaired_keep, seed)
        super().__init__(rows, batch_size, shuffle=shuffle, seed=seed, device=device, **shard)
        self.images, self.captions = split.images.to(device), split.with_placeholder().to(device)

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


class COCODataModule(pl.LightningDataModule):
    """Image + caption-embedding pairs from the official COCO 2017 layout.

    Args:
        root: holds train2017/, val2017/ and annotations/ (see DOWNLOAD_HELP).
        cache_dir: where the downsampled images and the embeddings are cached.
        image_size: side of the square images.
        caption: `first`, `random` or `all` (see the module docstring).
        embedding: {model, pooling, max_length, batch_size, device} of the
            caption embedder; `embedding_dim` must match the model's output.
        standardize: shift and scale each embedding dimension by its training
            mean and standard deviation, so the unit-variance Gaussian
            likelihood of the caption decoder fits its scale.
        val_fraction: the share of train2017 images held out for validation
            (a fixed split, the same for every seed).
        subset: optional number of images per split, e.g. {train: 1000}.
        on_device: under a Trainer on an accelerator, keep the splits on its
            device (see MNISTDataModule).
        paired_fraction: the share of training examples that keep every
            modality they have; each of the others keeps only `unpaired_keep`
            (a modality, or `random`: one drawn per example). Fixed by the
            seed; see `mwvae.data.missing`. Images without captions train with
            the caption hidden in any case; validation and test stay complete.

    `captioned[split]` holds each split's images and all their captions;
    `splits[split]` pairs each image with its first caption (the placeholder
    for an image without), and for training carries the masks of the
    `first` loader's examples.
    """

    MODALITIES = MODALITIES
    class_key: str | None = None  # real COCO images share no class: no coherence, retrieval

    def __init__(
        self,
        root: str,
        cache_dir: str,
        modalities: dict[str, Any] | None = None,
        image_size: int = 32,
        caption: str = "random",
        embedding: dict[str, Any] | None = None,
        embedding_dim: int = 384,
        standardize: bool = True,
        val_fraction: float = 0.05,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        subset: dict[str, int | None] | None = None,
        seed: int | None = 0,
        on_device: bool = True,
        paired_fraction: float = 1.0,
        unpaired_keep: str = RANDOM,
    ):
        super().__init__()
        if caption not in CAPTION_CHOICES:
            raise ValueError(f"data.caption={caption!r}; choose one of {list(CAPTION_CHOICES)}")
        unknown = set(modalities or ()) - set(self.MODALITIES)
        if unknown:
            raise ValueError(f"COCO has no modality {sorted(unknown)}; it has {self.MODALITIES}")
        self.root, self.cache_dir = Path(root), Path(cache_dir)
        self.image_size, self.caption = image_size, caption
        self.embedding = {
            "model": "all-MiniLM-L6-v2",
            "pooling": "mean",
            "max_length": 128,
            "batch_size": 256,
            "device": "cpu",
            **(embedding or {}),
        }
        self.embedding_dim, self.standardize = embedding_dim, standardize
        self.val_fraction = val_fraction
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.subset = dict(subset or {})
        self.seed = 0 if seed is None else seed
        self.on_device = on_device
        check_hiding(paired_fraction, unpaired_keep, self.MODALITIES)
        self.paired_fraction, self.unpaired_keep = paired_fraction, unpaired_keep
        self._embedder: CaptionEmbedder | None = None
        self.captioned: dict[str, CaptionedSplit] = {}
        self.splits: dict[str, dict[str, Tensor]] = {}

    def embed(self, captions: list[str]) -> Tensor:
        """Caption embeddings; the language model is loaded on first use only."""
        if self._embedder is None:
            self._embedder = CaptionEmbedder(**self.embedding)
        return self._embedder.embed(captions)

    def ensure_available(self) -> None:
        """Raise DatasetMissingError, with download instructions, if the root is incomplete."""
        check_layout(self.root)

    def prepare_data(self) -> None:
        # The caches are built by `setup`, under file locks: reading them here
        # too would decode and hash everything twice.
        self.ensure_available()

    def read_folder(self, folder: str, uncaptioned: bool) -> CaptionedSplit:
        """The readable images of a folder with all their captions; those
        without captions too if `uncaptioned`."""
        path = annotation_file(self.root, folder)
        annotations = read_annotations(path)
        if not uncaptioned:
            annotations = annotations.captioned_only()
        elif annotations.num_uncaptioned:
            log.info(
                "%s: %d images have no caption; they train with the caption hidden",
                path,
                annotations.num_uncaptioned,
            )
        images = cached_images(self.root, folder, annotations, self.image_size, self.cache_dir)
        embeddings = cached_caption_embeddings(
            path, annotations, self.embedding, self.cache_dir, self.embed
        )
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"data.embedding_dim={self.embedding_dim} but {self.embedding['model']} gives "
                f"{embeddings.shape[1]}-d embeddings; set data.embedding_dim={embeddings.shape[1]}"
            )
        counts = torch.tensor([len(c) for c in annotations.captions])
        owner = torch.repeat_interleave(torch.arange(len(counts)), counts)
        kept = images["readable"][owner]  # captions of readable images
        new_row = images["readable"].long().cumsum(0) - 1
        texts = [text for captions in annotations.captions for text in captions]
        return CaptionedSplit(
            images=images["images"],
            captions=embeddings[kept],
            owner=new_row[owner[kept]],
            texts=[t for t, k in zip(texts, kept.tolist(), strict=True) if k],
        )

    def setup(self, stage: str | None = None) -> None:
        if self.captioned:
            return
        self.ensure_available()
        train = self.read_folder(FOLDERS["train"], uncaptioned=True)
        # Validation needs pairs: it holds out captioned images only, the others all train.
        captioned = train.has_caption.nonzero().squeeze(1)
        order = captioned[
            torch.randperm(len(captioned), generator=torch.Generator().manual_seed(0))
        ]
        held_out = order[: round(self.val_fraction * len(order))].sort().values
        in_train = torch.ones(len(train.images), dtype=torch.bool)
        in_train[held_out] = False
        parts = {"train": in_train.nonzero().squeeze(1), "val": held_out}
        test = self.read_folder(FOLDERS["val"], uncaptioned=False)
        splits = {split: select(train, rows) for split, rows in parts.items()}
        splits["test"] = test
        splits = {
            name: select(
                s, torch.arange(min(len(s.images), self.subset.get(name) or len(s.images)))
            )
            for name, s in splits.items()
        }
        if self.standardize:
            mean, std = splits["train"].captions.mean(0), splits["train"].captions.std(0)
            std = torch.where(std > 1e-6, std, 1.0)  # dead dimensions (MiniLM has a few) stay put
            for s in splits.values():
                s.captions = (s.captions - mean) / std
        for name, s in splits.items():
            s.images = s.images.float().div_(255.0)
            self.captioned[name] = s
            self.splits[name] = {
                "image": s.images,
                "caption": s.with_placeholder()[s.first_caption],
            }
        self.splits["train"] |= presence_masks(
            self.captioned["train"].has_caption,
            self.paired_fraction,
            self.unpaired_keep,
            self.seed,
        )

    def loader(self, split: str, batch_size: int, shuffle: bool, choice: str):
        shard = distributed_shard(self.trainer, training=split == "train")
        device = loader_device(self.trainer) if self.on_device else None
        # Only training hides modalities: evaluation needs complete pairs.
        hiding = {"paired_fraction": self.paired_fraction, "unpaired_keep": self.unpaired_keep}
        return CaptionedImageLoader(
            self.captioned[split],
            batch_size,
            choice,
            shuffle,
            self.seed,
            device,
            **(hiding if split == "train" else {}),
            **shard,
        )

    def train_dataloader(self) -> CaptionedImageLoader:
        return self.loader("train", self.batch_size, shuffle=True, choice=self.caption)

    def val_dataloader(self) -> CaptionedImageLoader:
        return self.loader("val", self.eval_batch_size, shuffle=False, choice="first")

    def test_dataloader(self) -> CaptionedImageLoader:
        return self.loader("test", self.eval_batch_size, shuffle=False, choice="first")


def select(split: CaptionedSplit, rows: Tensor) -> CaptionedSplit:
    """The images at `rows` (increasing) with their captions."""
    new_row = torch.full((len(split.images),), -1, dtype=torch.long)
    new_row[rows] = torch.arange(len(rows))
    kept = new_row[split.owner] >= 0
    return CaptionedSplit(
        images=split.images[rows],
        captions=split.captions[kept],
        owner=new_row[split.owner[kept]],
        texts=[t for t, k in zip(split.texts, kept.tolist(), strict=True) if k],
        classes=None if split.classes is None else split.classes[rows],
    )


class COCODemoDataModule(COCODataModule):
    """COCODataModule on the synthetic COCO-format dataset of `coco_demo`,
    generated into `root` on first use (offline, a few seconds);
    `num_uncaptioned` of its training images get no captions. An existing
    `root` is used as it is, so give each setting its own root."""

    def __init__(
        self,
        *args,
        num_train: int = 4000,
        num_val: int = 1000,
        num_uncaptioned: int = 0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.num_train, self.num_val = num_train, num_val
        self.num_uncaptioned = num_uncaptioned

    # Evaluation: the colours of a scene's shapes, which every caption names.
    class_key = "colours"

    def read_folder(self, folder: str, uncaptioned: bool) -> CaptionedSplit:
        split = super().read_folder(folder, uncaptioned)
        split.classes = scene_classes(annotation_file(self.root, folder), uncaptioned)
        if len(split.classes) != len(split.images):
            raise RuntimeError(f"{self.root}/{folder}: unreadable demo images; delete the folder")
        return split

    def setup(self, stage: str | None = None) -> None:
        if self.captioned:
            return
        super().setup(stage)
        for name, split in self.splits.items():
            split[self.class_key] = self.captioned[name].classes

    def classifier_source(self, modality: str) -> str | None:
        return modality

    def ensure_available(self) -> None:
        with FileLock(str(self.root) + ".lock"):  # parallel jobs generate it once
            if not self.root.exists():
                generate_coco_demo(
                    self.root,
                    self.num_train,
                    self.num_val,
                    seed=0,
                    num_uncaptioned=self.num_uncaptioned,
                )
        super().ensure_available()


# The class of a demo scene: the set of its shapes' colours (one or two), an index here.
COLOUR_SETS = [frozenset(c) for n in (1, 2) for c in itertools.combinations(COLOURS, n)]


def scene_classes(path: Path, uncaptioned: bool) -> Tensor:
    """The colour-set class of each image of a demo annotation file, in the
    order `read_annotations` lists them (by id; captioned ones only unless
    `uncaptioned`), from the ground truth the generator stores with each image."""
    content = json.loads(Path(path).read_text())
    captioned = {a["image_id"] for a in content["annotations"]}
    entries = sorted(content["images"], key=lambda e: int(e["id"]))
    return torch.tensor(
        [
            COLOUR_SETS.index(frozenset(s["colour"] for s in e["scene"]["shapes"]))
            for e in entries
            if uncaptioned or e["id"] in captioned
        ]
    )

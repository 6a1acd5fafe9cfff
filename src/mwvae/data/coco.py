"""MS-COCO as `image` (3 x S x S in [0, 1]) and `caption`: a sentence
embedding, or with `caption_format: tokens` (the `data/text=tokens` config)
a sequence of token ids (`mwvae.data.tokens`, `vocabulary`).

Training draws from train2017 (minus a held-out validation share), the test
split is val2017. Each image has about five captions; `caption` chooses which
one pairs with it in training (`CAPTION_CHOICES`, see `mwvae.data.captioned`).
Validation and test batches pair each image with its first caption;
retrieval metrics use every caption (`captioned[split]`).

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

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import MISSING
from torch import Tensor

from mwvae.data.caption_cache import cached_caption_embeddings
from mwvae.data.captioned import (
    CAPTION_CHOICES,
    MODALITIES,
    CaptionedImageLoader,
    CaptionedSplit,
    presence_masks,
)
from mwvae.data.captions import CaptionEmbedder, load_tokenizer
from mwvae.data.coco_source import (
    FOLDERS,
    annotation_file,
    cached_images,
    check_layout,
    read_annotations,
)
from mwvae.data.module import InMemoryDataModule, Split
from mwvae.data.tokens import CaptionVocabulary, TokenOptions, tokenize
from mwvae.options import OptionError, bounded, choice

log = logging.getLogger(__name__)

# What a caption is to the model: a sentence embedding (Gaussian) or token ids (a sequence).
CAPTION_FORMATS = ("embedding", "tokens")


class COCODataModule(InMemoryDataModule):
    """Image + caption pairs (embeddings or token ids) from the official COCO 2017 layout
    (`mwvae.data.coco_source`); options: `Options`.

    `captioned[split]` holds each split's images and all their captions;
    `splits[split]` pairs each image with its first caption (the placeholder
    for an image without), and for training carries the masks of the
    `first` loader's examples.
    """

    MODALITIES = MODALITIES
    class_key = None  # real COCO images share no class: no coherence, retrieval

    @dataclass
    class Options(InMemoryDataModule.Options):
        root: str = MISSING  # holds train2017/, val2017/ and annotations/ (see DOWNLOAD_HELP)
        cache_dir: str = MISSING  # where the downsampled images and the embeddings are cached
        image_size: int = bounded(32, minimum=1)  # side of the square images
        caption: str = choice(CAPTION_CHOICES, "random")  # see `mwvae.data.captioned`
        # Set with the caption's networks by the `data/text` config group.
        caption_format: str = choice(CAPTION_FORMATS, "embedding")
        tokens: TokenOptions = field(default_factory=TokenOptions)  # caption_format: tokens
        embedding: CaptionEmbedder.Options = field(default_factory=CaptionEmbedder.Options)
        # The embeddings' size: the model's output (768 for bert-base-uncased).
        embedding_dim: int = bounded(384, minimum=1)
        # Shift and scale each embedding dimension by its training mean and
        # standard deviation, so the unit-variance Gaussian likelihood of the
        # caption decoder fits its scale.
        standardize: bool = True
        # The share of train2017's captioned images held out for validation, in (0, 1)
        # (a fixed split, the same for every seed).
        val_fraction: float = 0.05

    @classmethod
    def check_options(cls, options: Any, prefix: str, **context: Any) -> None:
        super().check_options(options, prefix, **context)
        likelihood = (options.modalities.get("caption") or {}).get("likelihood")
        if likelihood is not None and (likelihood == "tokens") != (
            options.caption_format == "tokens"
        ):
            raise OptionError(
                f"{prefix}.caption_format={options.caption_format} but the caption's likelihood "
                f"is {likelihood}: choose the form and its networks together with "
                f"data/text=tokens or data/text=embedding"
            )
        if not 0 < options.val_fraction < 1:
            raise OptionError(
                f"{prefix}.val_fraction: must be between 0 and 1, got {options.val_fraction}"
            )

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.root = Path(self.options.root)
        self._embedder: CaptionEmbedder | None = None
        self.captioned: dict[str, CaptionedSplit] = {}
        self.vocabulary: CaptionVocabulary | None = None  # caption_format: tokens

    @property
    def tokens(self) -> bool:
        return self.options.caption_format == "tokens"

    @property
    def cache_dir(self) -> Path:
        return Path(self.options.cache_dir)

    def embed(self, captions: list[str]) -> Tensor:
        """Caption embeddings; the language model is loaded on first use only."""
        if self._embedder is None:
            self._embedder = CaptionEmbedder(**asdict(self.options.embedding))
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
        images = cached_images(
            self.root, folder, annotations, self.options.image_size, self.cache_dir
        )
        texts = [text for captions in annotations.captions for text in captions]
        # Token ids wait for the vocabulary of the training captions (`encode_tokens`).
        values = torch.empty(len(texts), 0) if self.tokens else self.embeddings(path, annotations)
        counts = torch.tensor([len(c) for c in annotations.captions])
        owner = torch.repeat_interleave(torch.arange(len(counts)), counts)
        kept = images["readable"][owner]  # captions of readable images
        new_row = images["readable"].long().cumsum(0) - 1
        return CaptionedSplit(
            images=images["images"],
            captions=values[kept],
            owner=new_row[owner[kept]],
            texts=[t for t, k in zip(texts, kept.tolist(), strict=True) if k],
        )

    def embeddings(self, path: Path, annotations) -> Tensor:
        """Every caption's embedding (cached), checked against `embedding_dim`."""
        embedding = asdict(self.options.embedding)
        embeddings = cached_caption_embeddings(
            path, annotations, embedding, self.cache_dir, self.embed
        )
        expected = self.options.embedding_dim
        if embeddings.shape[1] != expected:
            raise ValueError(
                f"data.embedding_dim={expected} but {embedding['model']} gives "
                f"{embeddings.shape[1]}-d embeddings; set data.embedding_dim={embeddings.shape[1]}"
            )
        return embeddings

    def encode_tokens(self, splits: dict[str, CaptionedSplit]) -> None:
        """Every split's captions as ids of the training captions' vocabulary."""
        options = self.options.tokens
        tokenizer = load_tokenizer(options.tokenizer)
        tokenized = {name: tokenize(tokenizer, s.texts) for name, s in splits.items()}
        self.vocabulary = CaptionVocabulary.build(tokenized["train"], tokenizer, options)
        for name, s in splits.items():
            s.captions = self.vocabulary.encode(tokenized[name])
        log.info(
            "Captions as tokens: %d of a possible %d vocabulary entries used; %.2f%% of the "
            "test tokens unknown",
            len(self.vocabulary),
            options.vocab_size,
            100 * self.vocabulary.unknown_share(splits["test"].captions),
        )

    def read_splits(self) -> dict[str, Split]:
        self.ensure_available()
        train = self.read_folder(FOLDERS["train"], uncaptioned=True)
        # Validation needs pairs: it holds out captioned images only, the others all train.
        captioned = train.has_caption.nonzero().squeeze(1)
        order = captioned[
            torch.randperm(len(captioned), generator=torch.Generator().manual_seed(0))
        ]
        held_out = order[: round(self.options.val_fraction * len(order))].sort().values
        in_train = torch.ones(len(train.images), dtype=torch.bool)
        in_train[held_out] = False
        parts = {"train": in_train.nonzero().squeeze(1), "val": held_out}
        test = self.read_folder(FOLDERS["val"], uncaptioned=False)
        splits = {split: train.select(rows) for split, rows in parts.items()}
        splits["test"] = test
        splits = {
            name: s.select(
                torch.arange(min(len(s.images), self.subset_size(name) or len(s.images)))
            )
            for name, s in splits.items()
        }
        if self.tokens:
            self.encode_tokens(splits)
        elif self.options.standardize:
            mean, std = splits["train"].captions.mean(0), splits["train"].captions.std(0)
            std = torch.where(std > 1e-6, std, 1.0)  # dead dimensions (MiniLM has a few) stay put
            for s in splits.values():
                s.captions = (s.captions - mean) / std
        for s in splits.values():
            s.images = s.images.float().div_(255.0)
        self.captioned = splits
        return {
            name: {"image": s.images, "caption": s.with_placeholder()[s.first_caption]}
            for name, s in splits.items()
        }

    def training_masks(self) -> dict[str, Tensor]:
        """The masks of the `first` loader's examples: every missing caption hidden too."""
        has_caption = self.captioned["train"].has_caption
        return presence_masks(has_caption, self.hidden_modalities(len(has_caption)))

    def make_loader(self, split: str, batch_size: int, **options: Any) -> CaptionedImageLoader:
        # Only training chooses captions and hides modalities: evaluation needs complete pairs.
        training = split == "train"
        return CaptionedImageLoader(
            self.captioned[split],
            batch_size,
            self.options.caption if training else "first",
            self.hidden_modalities if training else None,
            **options,
        )

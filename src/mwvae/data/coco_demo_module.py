"""The offline COCO-format demo as a DataModule: `COCODataModule` on the
synthetic dataset of `mwvae.data.coco_demo`, generated into `root` on first
use (offline, a few seconds). Its class is the set of colours of a scene's
shapes, which every caption names. With captions as tokens, a caption's
class and attributes are read from its text (`mwvae.data.coco_demo_reading`)
instead of by a classifier."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from torch import Tensor

from mwvae.data.captioned import CaptionedSplit
from mwvae.data.coco import COCODataModule
from mwvae.data.coco_demo import (
    COLOURS,
    NUM_TRAIN,
    NUM_UNCAPTIONED,
    NUM_VAL,
    check_arguments,
    generate_coco_demo,
)
from mwvae.data.coco_demo_reading import Attributes, read_caption, scene_attributes
from mwvae.data.coco_source import annotation_file
from mwvae.data.module import Split
from mwvae.options import OptionError

UNREAD = -1  # the class of a caption that names no colour set of the demo

# The class of a demo scene: the set of its shapes' colours (one or two), an index here.
COLOUR_SETS = [frozenset(c) for n in (1, 2) for c in itertools.combinations(COLOURS, n)]
COLOUR_SET_INDEX = {colours: i for i, colours in enumerate(COLOUR_SETS)}


class COCODemoDataModule(COCODataModule):
    """COCODataModule on a generated demo: `num_train` + `num_val` images
    (the demo's train2017 and val2017), `num_uncaptioned` of the training
    images without captions. An existing `root` is used as it is, so give
    each setting its own root."""

    class_key = "colours"  # the colours of a scene's shapes, which every caption names

    @dataclass
    class Options(COCODataModule.Options):
        num_train: int = NUM_TRAIN
        num_val: int = NUM_VAL
        # Training images generated without captions (they train with it hidden).
        num_uncaptioned: int = NUM_UNCAPTIONED

    @classmethod
    def check_options(cls, options: Any, prefix: str, **context: Any) -> None:
        super().check_options(options, prefix, **context)
        try:
            check_arguments(
                options.num_train, options.num_val, num_uncaptioned=options.num_uncaptioned
            )
        except ValueError as error:  # its message starts with the argument's name
            raise OptionError(f"{prefix}.{error}") from None

    def classifier_source(self, modality: str) -> str | None:
        return None if self.tokens and modality == "caption" else modality

    def rule_readers(self) -> dict[str, Callable[[Tensor], Tensor]]:
        """Token captions: their class read from their text (`caption_classes`)."""
        return {"caption": self.caption_classes} if self.tokens else {}

    def caption_attributes(self, ids: Tensor) -> list[Attributes]:
        """What each caption of token ids names (`read_caption` of its text)."""
        return [read_caption(text) for text in self.vocabulary.decode(ids.cpu())]

    def caption_classes(self, ids: Tensor) -> Tensor:
        """The colour-set class each caption names (`UNREAD` for none of the demo's)."""
        found = [COLOUR_SET_INDEX.get(a.colours, UNREAD) for a in self.caption_attributes(ids)]
        return torch.tensor(found, device=ids.device)

    def scene_attributes(self, split: str) -> list[Attributes]:
        """What each image of a split shows, as `caption_attributes` reads captions."""
        return [scene_attributes(scene) for scene in self.captioned[split].scenes]

    def ensure_available(self) -> None:
        with FileLock(str(self.root) + ".lock"):  # parallel jobs generate it once
            if not self.root.exists():
                options = self.options  # the demo's own seed: one dataset per setting
                generate_coco_demo(
                    self.root,
                    options.num_train,
                    options.num_val,
                    num_uncaptioned=options.num_uncaptioned,
                )
        super().ensure_available()

    def read_folder(self, folder: str, uncaptioned: bool) -> CaptionedSplit:
        split = super().read_folder(folder, uncaptioned)
        split.scenes = scenes(annotation_file(self.root, folder), uncaptioned)
        split.classes = torch.tensor(
            [COLOUR_SET_INDEX[scene_attributes(scene).colours] for scene in split.scenes]
        )
        if len(split.classes) != len(split.images):
            raise RuntimeError(f"{self.root}/{folder}: unreadable demo images; delete the folder")
        return split

    def read_splits(self) -> dict[str, Split]:
        splits = super().read_splits()
        for name, split in splits.items():
            split[self.class_key] = self.captioned[name].classes
        return splits


def scenes(path: Path, uncaptioned: bool) -> list[dict]:
    """The scene of each image of a demo annotation file (the ground truth the
    generator stores with it), in the order `read_annotations` lists them (by
    id; captioned ones only unless `uncaptioned`)."""
    content = json.loads(Path(path).read_text())
    captioned = {a["image_id"] for a in content["annotations"]}
    entries = sorted(content["images"], key=lambda e: int(e["id"]))
    return [e["scene"] for e in entries if uncaptioned or e["id"] in captioned]

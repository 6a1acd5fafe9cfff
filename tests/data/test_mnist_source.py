import gzip

import pytest
import torch

from mwvae.data.mnist_source import (
    ARCHIVE_NAME,
    DatasetMissingError,
    read_offline_archive,
)


def test_offline_archive_holds_the_full_mnist(mnist_dir):
    tensors = read_offline_archive(mnist_dir)
    sizes = {split: len(tensors[f"{split}_labels"]) for split in ("train", "val", "test")}
    assert sizes == {"train": 50_000, "val": 10_000, "test": 10_000}
    assert tensors["train_images"].shape == (50_000, 28, 28)
    assert tensors["train_images"].dtype == torch.uint8
    assert tensors["train_images"].max() == 255  # k/256 read back as the integer k
    assert set(tensors["test_labels"].unique().tolist()) == set(range(10))


def test_missing_archive_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetMissingError, match="make data"):
        read_offline_archive(tmp_path)


def test_tampered_archive_is_refused(tmp_path):
    (tmp_path / ARCHIVE_NAME).write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(DatasetMissingError, match="corrupt"):
        read_offline_archive(tmp_path)

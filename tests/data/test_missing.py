"""Hidden modalities: which training examples keep what, fixed by the seed."""

from __future__ import annotations

import re

import pytest
import torch

from mwvae.data import MNIST3DataModule, MNISTDataModule
from mwvae.data.missing import hidden_modalities
from mwvae.options import OptionError

NAMES = ("image", "label")


def test_the_paired_share_keeps_everything_and_the_others_one_modality():
    masks = hidden_modalities(1000, NAMES, 0.1, "random", seed=0)
    image, label = masks["mask/image"], masks["mask/label"]
    assert (image & label).sum() == 100  # paired
    assert (image | label).all()  # nobody keeps nothing
    unpaired_images = (image & ~label).sum()
    assert 400 - 60 < unpaired_images < 400 + 60  # half of 900, about (binomial sd 15)


@pytest.mark.parametrize("keep", NAMES)
def test_unpaired_examples_keep_the_chosen_modality(keep):
    masks = hidden_modalities(200, NAMES, 0.25, keep, seed=0)
    assert masks[f"mask/{keep}"].all()
    other = next(m for m in NAMES if m != keep)
    assert masks[f"mask/{other}"].sum() == 50


def test_masks_depend_on_the_seed_alone():
    first, again = (hidden_modalities(500, NAMES, 0.01, "random", seed=1) for _ in range(2))
    other = hidden_modalities(500, NAMES, 0.01, "random", seed=2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_complete_data_has_no_masks():
    assert hidden_modalities(10, NAMES, 1.0, "random", seed=0) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"paired_fraction": 1.5}, "data.paired_fraction: must be <= 1.0, got 1.5"),
        ({"paired_fraction": -0.1}, "data.paired_fraction: must be >= 0.0, got -0.1"),
        ({"unpaired_keep": "caption"}, "data.unpaired_keep: 'caption'; choose 'random' or one"),
    ],
)
def test_bad_hiding_settings_name_their_key_before_anything_is_read(options, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        MNISTDataModule.parse_options({"data_dir": "nowhere", **options}, "data")
    options = MNIST3DataModule.parse_options({"data_dir": "x", "unpaired_keep": "image2"}, "data")
    assert options.unpaired_keep == "image2"  # one of MNIST3's own modalities


def mnist(mnist_dir, datamodule_class=MNISTDataModule, seed=0, fraction=0.1):
    datamodule = datamodule_class(
        data_dir=str(mnist_dir),
        subset={"train": 500, "val": 50, "test": 50},
        batch_size=100,
        seed=seed,
        paired_fraction=fraction,
    )
    datamodule.setup()
    return datamodule


def split_masks(datamodule) -> dict[str, torch.Tensor]:
    return {k: v for k, v in datamodule.splits["train"].items() if k.startswith("mask/")}


def test_mnist_masks_are_fixed_by_the_seed(mnist_dir):
    masks = split_masks(mnist(mnist_dir))
    assert set(masks) == {"mask/image", "mask/label"}
    assert (masks["mask/image"] & masks["mask/label"]).sum() == 50
    again, other = split_masks(mnist(mnist_dir)), split_masks(mnist(mnist_dir, seed=1))
    assert all(torch.equal(masks[k], again[k]) for k in masks)
    assert not all(torch.equal(masks[k], other[k]) for k in masks)


def test_training_batches_carry_each_examples_masks(mnist_dir):
    datamodule = mnist(mnist_dir)
    split = datamodule.splits["train"]
    loader = datamodule.train_dataloader()
    order = loader.sampler.indices()  # the epoch's shuffled order
    batch = next(iter(loader))
    for key in ("mask/image", "mask/label", "label"):
        assert torch.equal(batch[key], split[key][order[:100]])
    assert not any(k.startswith("mask/") for k in next(iter(datamodule.val_dataloader())))


def test_mnist3_hides_the_second_image_too(mnist_dir):
    masks = split_masks(mnist(mnist_dir, MNIST3DataModule, fraction=0.0))
    assert set(masks) == {"mask/image", "mask/label", "mask/image2"}
    assert torch.stack(list(masks.values())).sum(0).eq(1).all()  # nobody paired: one each
    assert split_masks(mnist(mnist_dir, fraction=1.0)) == {}

"""PolyMNIST: the recipe checked image by image against a plain, unvectorised
rendering with PIL; determinism; the pairing of a tuple's images; the
DataModule on the full cache (built once for this file, ~10 s)."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import safe_open

import mwvae.data.polymnist as polymnist
from mwvae.data import MNISTDataModule, PolyMNISTDataModule
from mwvae.data.cache import save_tensors
from mwvae.data.polymnist import (
    BACKGROUNDS,
    MODALITIES,
    background_dir,
    build_polymnist,
    decode_background,
    read_background_files,
)
from mwvae.options import OptionError
from mwvae.training import train
from tests.test_train import config

SMALL = {"train": 3000, "val": 1000, "test": 1000}


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return MNISTDataModule(data_dir=str(mnist_dir)).load_raw()


@pytest.fixture(scope="module")
def small_mnist(mnist):
    """The first examples of each MNIST split: the recipe does not need all of them."""
    return {
        f"{split}_{kind}": mnist[f"{split}_{kind}"][:n]
        for split, n in SMALL.items()
        for kind in ("images", "labels")
    }


@pytest.fixture(scope="module")
def backgrounds():
    files = read_background_files()
    return [decode_background(files[name]) for name in BACKGROUNDS]


@pytest.fixture(scope="module")
def small(small_mnist, backgrounds):
    return build_polymnist(small_mnist, backgrounds, dataset_seed=0)


def rendered(background_file: str, digit: np.ndarray, top: int, left: int) -> np.ndarray:
    """MoPoE's recipe for one image, in floats: crop, then 1 - value where the digit is."""
    with Image.open(background_dir() / background_file) as image:
        crop = image.convert("RGB").crop((left, top, left + 28, top + 28))
    pixels = np.asarray(crop, dtype=np.float64).transpose(2, 0, 1) / 255.0
    on = digit > 128
    pixels[:, on] = 1.0 - pixels[:, on]
    return pixels


def test_each_image_is_its_digit_inverted_on_a_crop_of_its_background(small, small_mnist):
    generator = torch.Generator().manual_seed(0)
    for split, n in SMALL.items():
        indices, corners = small[f"{split}_mnist_indices"], small[f"{split}_crop_corners"]
        for i in torch.randint(n, (8,), generator=generator).tolist():
            for k, (m, background_file) in enumerate(zip(MODALITIES, BACKGROUNDS, strict=True)):
                digit = small_mnist[f"{split}_images"][indices[i, k]].numpy()
                top, left = corners[i, k].tolist()
                expected = rendered(background_file, digit, top, left)
                found = small[f"{split}_{m}"][i].double().numpy() / 255.0
                np.testing.assert_allclose(found, expected, rtol=0, atol=1e-12)


def test_every_modality_shows_the_tuples_class_and_every_image_of_it_once(small, small_mnist):
    for split, n in SMALL.items():
        labels, indices = small[f"{split}_labels"], small[f"{split}_mnist_indices"]
        assert torch.equal(labels, small_mnist[f"{split}_labels"])  # tuple i: MNIST i's class
        for k in range(len(MODALITIES)):
            assert torch.equal(labels[indices[:, k]], labels)
            assert torch.equal(indices[:, k].sort().values, torch.arange(n))  # a permutation
            assert (indices[:, k] == torch.arange(n)).float().mean() < 0.05  # not MNIST's order


def test_a_tuples_images_are_other_mnist_images(small):
    for split in SMALL:
        indices = small[f"{split}_mnist_indices"]
        for a in range(len(MODALITIES)):
            for b in range(a + 1, len(MODALITIES)):
                # By chance, 1 / (the class's size): about 1% of the val tuples.
                assert (indices[:, a] == indices[:, b]).float().mean() < 0.03


def test_the_backgrounds_tell_the_modalities_apart(small):
    """Nearest class mean of an image's colour statistics (mean and spread per
    channel) finds its modality far above chance (0.2)."""

    def features(split: str) -> torch.Tensor:
        images = [small[f"{split}_{m}"].float() / 255 for m in MODALITIES]
        return torch.stack([torch.cat([x.mean((2, 3)), x.std((2, 3))], 1) for x in images])

    train, val = features("train"), features("val")  # (modality, n, 6)
    centres = train.mean(1)
    found = torch.cdist(val.flatten(0, 1), centres).argmin(1)
    truth = torch.arange(len(MODALITIES)).repeat_interleave(val.shape[1])
    assert (found == truth).float().mean() > 0.6


def test_builds_are_bit_for_bit_reproducible_and_follow_the_dataset_seed(
    small, small_mnist, backgrounds
):
    again = build_polymnist(small_mnist, backgrounds, dataset_seed=0)
    assert small.keys() == again.keys()
    assert all(torch.equal(small[k], again[k]) for k in small)
    other = build_polymnist(small_mnist, backgrounds, dataset_seed=1)
    assert torch.equal(other["train_labels"], small["train_labels"])
    assert all((other[f"train_{m}"] != small[f"train_{m}"]).any() for m in MODALITIES)
    assert (other["train_mnist_indices"] != small["train_mnist_indices"]).float().mean() > 0.9


# The DataModule, on the full cache.


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, mnist_dir):
    folder = tmp_path_factory.mktemp("polymnist")
    PolyMNISTDataModule(data_dir=str(folder), mnist_dir=str(mnist_dir)).prepare_data()
    yield folder
    shutil.rmtree(folder)  # 830 MB: pytest would keep three sessions' worth


def datamodule(data_dir, mnist_dir, **options) -> PolyMNISTDataModule:
    subset = {"train": 1000, "val": 200, "test": 200}
    return PolyMNISTDataModule(
        data_dir=str(data_dir), mnist_dir=str(mnist_dir), subset=subset, **options
    )


def test_batches_hold_five_images_and_the_label(data_dir, mnist_dir, mnist):
    dm = datamodule(data_dir, mnist_dir, batch_size=64)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {*MODALITIES, "label"} and dm.MODALITIES == MODALITIES
    for m in MODALITIES:
        assert batch[m].shape == (64, 3, 28, 28) and batch[m].dtype == torch.float32
        assert batch[m].min() >= 0 and batch[m].max() <= 1
    assert batch["label"].dtype == torch.int64
    train = dm.splits["train"]
    assert len(train["label"]) == 1000 and len(dm.splits["val"]["m3"]) == 200
    assert torch.equal(train["label"], mnist["train_labels"][:1000])  # MNIST's classes, in order
    raw = dm.load_raw()
    assert torch.equal(train["m2"], raw["train_m2"][:1000].float() / 255)
    assert dm.class_key == "label" and [dm.classifier_source(m) for m in MODALITIES] == [
        *MODALITIES
    ]
    assert dm.cache_dir == data_dir


def test_the_cache_records_its_inputs(data_dir, mnist_dir):
    dm = datamodule(data_dir, mnist_dir)
    with safe_open(dm.cache_path, framework="pt") as f:
        metadata = f.metadata()
    files = read_background_files()
    for m, name in zip(MODALITIES, BACKGROUNDS, strict=True):
        assert metadata[f"background_{m}_sha256"] == hashlib.sha256(files[name]).hexdigest()
    assert metadata["dataset_seed"] == "0" and metadata["recipe"] == polymnist.RECIPE


def test_the_runs_seed_does_not_change_the_dataset(data_dir, mnist_dir):
    first, second = (datamodule(data_dir, mnist_dir, seed=s) for s in (0, 1))
    first.setup()
    second.setup()
    assert first.cache_path == second.cache_path
    assert all(torch.equal(first.splits["val"][m], second.splits["val"][m]) for m in MODALITIES)
    assert datamodule(data_dir, mnist_dir, dataset_seed=3).cache_path != first.cache_path


class Rebuilt(Exception):
    pass


def refuse_to_build(*args, **kwargs):
    raise Rebuilt


def test_another_background_file_a_corrupt_file_or_another_layout_rebuilds_the_cache(
    data_dir, mnist_dir, tmp_path, monkeypatch
):
    # A rebuild is seen, not paid for (the fixture's build is the real one, and
    # builds are bit-for-bit reproducible).
    monkeypatch.setattr(polymnist, "build_polymnist", refuse_to_build)
    dm = datamodule(data_dir, mnist_dir)
    dm.load_raw()  # the cache of these inputs: no rebuild
    files = read_background_files()
    files["rocket.jpg"] = files["coffee.png"]  # another photograph behind m3
    with monkeypatch.context() as patch:
        patch.setattr(polymnist, "read_background_files", lambda: files)
        with pytest.raises(Rebuilt):
            dm.load_raw()
    other = datamodule(tmp_path, mnist_dir)
    other.cache_path.write_bytes(dm.cache_path.read_bytes()[:1_000_000])  # truncated
    with pytest.warns(UserWarning, match="does not match|unreadable"), pytest.raises(Rebuilt):
        other.load_raw()
    save_tensors(other.cache_path, {"train_m0": torch.zeros(2, 3, 28, 28, dtype=torch.uint8)})
    with pytest.warns(UserWarning, match="holds the keys"), pytest.raises(Rebuilt):
        other.load_raw()


def test_weak_supervision_hides_modalities_of_the_training_split(data_dir, mnist_dir):
    dm = datamodule(data_dir, mnist_dir, paired_fraction=0.1, batch_size=100)
    dm.setup()
    masks = torch.stack([dm.splits["train"][f"mask/{m}"] for m in MODALITIES])
    assert masks.all(0).sum() == 100  # the paired tenth keeps all five
    assert torch.isin(masks.sum(0), torch.tensor([1, 5])).all()  # the others keep one
    assert {f"mask/{m}" for m in MODALITIES} <= set(next(iter(dm.train_dataloader())))
    assert not any(k.startswith("mask/") for k in next(iter(dm.val_dataloader())))
    kept = datamodule(data_dir, mnist_dir, paired_fraction=0.0, unpaired_keep="m3")
    kept.setup()
    assert kept.splits["train"]["mask/m3"].all() and not kept.splits["train"]["mask/m0"].any()
    with pytest.raises(OptionError, match="data.unpaired_keep"):
        datamodule(data_dir, mnist_dir, unpaired_keep="label")  # the class, not a modality


def test_a_model_trains_on_weakly_supervised_polymnist(data_dir, mnist_dir, tmp_path):
    cfg = config(
        tmp_path,
        "data=polymnist",
        "model=mw_vae",
        "debug=fast",
        f"data.data_dir={data_dir}",
        f"data.mnist_dir={mnist_dir}",
        "data.subset={train:256,val:128,test:128}",
        "data.paired_fraction=0.5",
        "evaluation.likelihood.k=100",  # the test's default, 20, is too few for five modalities
    )
    metrics, objects = train(cfg)
    assert objects["trainer"].state.finished
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))
    assert objects["model"].likelihoods["m4"].scale == 0.75

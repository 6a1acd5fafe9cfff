"""Classifiers for coherence: trained once per data, cached, verified and
rebuilt, keyed by what they were trained on."""

from __future__ import annotations

import logging

import pytest
import torch

import mwvae.evaluation.classifier as classifier_module
from mwvae.data import MNIST3DataModule, MNISTDataModule, PolyMNISTDataModule
from mwvae.data.cache import load_tensors, save_tensors
from mwvae.evaluation.classifier import REQUIRED_ACCURACY, accuracy, load_classifiers


@pytest.mark.slow  # trains on all 50k training digits once per clone (about 100 s on 2 cores)
def test_cached_classifier_reads_test_digits_at_99_percent(mnist_dir):
    datamodule = MNISTDataModule(data_dir=str(mnist_dir))
    (classifier,) = load_classifiers(datamodule, ["image", "label"]).values()  # label: none
    test = datamodule.splits["test"]
    assert classifier.test_accuracy >= REQUIRED_ACCURACY
    assert accuracy(classifier, test["image"], test["label"]) == pytest.approx(
        classifier.test_accuracy
    )


@pytest.fixture
def trainings(monkeypatch):
    """Counts the classifiers trained (quick on small subsets; no accuracy required)."""
    count = []

    def train(*args, **kwargs):
        count.append(1)
        return original(*args, **kwargs)

    original = classifier_module.train_classifier
    monkeypatch.setattr(classifier_module, "train_classifier", train)
    monkeypatch.setattr(classifier_module, "REQUIRED_ACCURACY", 0.0)
    monkeypatch.setattr(classifier_module, "MIN_STEPS", 20)  # caching is tested, not accuracy
    return count


def small(mnist_dir, tmp_path, module=MNISTDataModule, **options):
    """A small subset whose caches live in tmp_path."""
    datamodule = module(
        data_dir=str(mnist_dir), subset={"train": 256, "val": 64, "test": 128}, **options
    )
    datamodule.setup()
    datamodule.data_dir = tmp_path
    return datamodule


def assert_same_classifier(a, b):
    assert a.test_accuracy == b.test_accuracy
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, msg=name)


def test_a_truncated_classifier_cache_is_retrained_with_a_warning(mnist_dir, tmp_path, trainings):
    datamodule = small(mnist_dir, tmp_path)
    first = load_classifiers(datamodule, ["image"])["image"]
    (path,) = tmp_path.glob("classifier_image_*.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.warns(UserWarning, match="classifier_image_.*is unreadable.*rebuilding"):
        again = load_classifiers(datamodule, ["image"])["image"]
    assert len(trainings) == 2
    assert_same_classifier(first, again)  # same seed, same network
    assert_same_classifier(first, load_classifiers(datamodule, ["image"])["image"])  # loaded
    assert len(trainings) == 2


def test_a_classifier_cache_of_another_network_is_retrained(mnist_dir, tmp_path, trainings):
    datamodule = small(mnist_dir, tmp_path)
    load_classifiers(datamodule, ["image"])
    (path,) = tmp_path.glob("classifier_image_*.safetensors")
    save_tensors(path, {"head.1.weight": torch.zeros(64, 1568), "test_accuracy": torch.tensor(1.0)})
    with pytest.warns(UserWarning, match="keys.*rebuilding"):
        classifier = load_classifiers(datamodule, ["image"])["image"]
    assert len(trainings) == 2 and classifier.test_accuracy < 1.0


def test_other_data_settings_get_a_classifier_of_their_own(mnist_dir, tmp_path, trainings, caplog):
    grey = load_classifiers(small(mnist_dir, tmp_path), ["image"])["image"]
    with caplog.at_level(logging.INFO):
        binary = load_classifiers(small(mnist_dir, tmp_path, binarize="threshold"), ["image"])[
            "image"
        ]
    assert len(trainings) == 2 and "No classifier of image trained on these data" in caplog.text
    assert len(list(tmp_path.glob("classifier_image_*.safetensors"))) == 2
    assert binary.test_accuracy != grey.test_accuracy or not torch.equal(
        binary.head[0].weight, grey.head[0].weight
    )
    load_classifiers(small(mnist_dir, tmp_path), ["image"])  # the grey one again: loaded
    assert len(trainings) == 2


def test_a_cache_whose_recorded_inputs_differ_is_rebuilt(mnist_dir, tmp_path, trainings, caplog):
    datamodule = small(mnist_dir, tmp_path)
    load_classifiers(datamodule, ["image"])
    (path,) = tmp_path.glob("classifier_image_*.safetensors")
    tensors = load_tensors(path)[0]
    save_tensors(path, tensors, {"trained_on": "something else"})
    with caplog.at_level(logging.INFO):
        load_classifiers(datamodule, ["image"])
    assert len(trainings) == 2 and "built from other inputs" in caplog.text


def test_images_of_the_same_kind_share_one_classifier(mnist_dir, tmp_path, trainings):
    found = load_classifiers(small(mnist_dir, tmp_path, MNIST3DataModule), ["image", "image2"])
    assert found["image"] is found["image2"] and len(trainings) == 1


@pytest.mark.slow
def test_polymnist_classifiers_read_98_percent_of_every_modality(mnist_dir):
    """Five classifiers on the full splits (cached in the project's data/polymnist;
    about six minutes each on one core the first time)."""
    datamodule = PolyMNISTDataModule(
        data_dir=str(mnist_dir.parent / "polymnist"), mnist_dir=str(mnist_dir)
    )
    found = load_classifiers(datamodule, PolyMNISTDataModule.MODALITIES)
    assert list(found) == list(PolyMNISTDataModule.MODALITIES)
    test = datamodule.splits["test"]
    for m, classifier in found.items():
        assert classifier.test_accuracy >= 0.98, (m, classifier.test_accuracy)
        assert accuracy(classifier, test[m][:2000], test["label"][:2000]) >= 0.97, m

"""The digit classifier is trained once, cached, verified and rebuilt."""

from __future__ import annotations

import pytest
import torch

import mwvae.evaluation.classifier as classifier_module
from mwvae.data import MNISTDataModule
from mwvae.data.cache import save_tensors
from mwvae.evaluation.classifier import REQUIRED_ACCURACY, accuracy, load_classifier


def test_cached_classifier_reads_test_digits_at_99_percent(mnist_dir):
    datamodule = MNISTDataModule(str(mnist_dir))
    classifier = load_classifier(datamodule)  # trains it (about a minute) the first time
    test = datamodule.splits["test"]
    assert classifier.test_accuracy >= REQUIRED_ACCURACY
    assert accuracy(classifier, test["image"], test["label"]) == pytest.approx(
        classifier.test_accuracy
    )


@pytest.fixture
def small_mnist(mnist_dir, tmp_path, monkeypatch):
    """A small subset whose classifier cache lives in tmp_path (quick to train;
    no accuracy required), and a list of the trainings."""
    datamodule = MNISTDataModule(str(mnist_dir), subset={"train": 256, "val": 64, "test": 128})
    datamodule.setup()
    datamodule.data_dir = tmp_path
    trainings = []

    def train(splits):
        trainings.append(1)
        return original(splits)

    original = classifier_module.train_classifier
    monkeypatch.setattr(classifier_module, "train_classifier", train)
    monkeypatch.setattr(classifier_module, "REQUIRED_ACCURACY", 0.0)
    return datamodule, trainings


def assert_same_classifier(a, b):
    assert a.test_accuracy == b.test_accuracy
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, msg=name)


def test_a_truncated_classifier_cache_is_retrained_with_a_warning(small_mnist):
    datamodule, trainings = small_mnist
    first = load_classifier(datamodule)
    path = datamodule.data_dir / "digit_classifier.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.warns(UserWarning, match="digit_classifier.safetensors is unreadable.*rebuilding"):
        again = load_classifier(datamodule)
    assert len(trainings) == 2
    assert_same_classifier(first, again)  # same seed, same network
    assert_same_classifier(first, load_classifier(datamodule))  # loaded, not trained
    assert len(trainings) == 2


def test_a_classifier_cache_of_another_network_is_retrained(small_mnist):
    datamodule, trainings = small_mnist
    path = datamodule.data_dir / "digit_classifier.safetensors"
    save_tensors(path, {"head.1.weight": torch.zeros(64, 1568), "test_accuracy": torch.tensor(1.0)})
    with pytest.warns(UserWarning, match="keys.*rebuilding"):
        classifier = load_classifier(datamodule)
    assert len(trainings) == 1 and classifier.test_accuracy < 1.0

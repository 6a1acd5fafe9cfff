"""The digit classifier is trained once, cached, verified and rebuilt."""

from __future__ import annotations

import pytest

from mwvae.data import MNISTDataModule
from mwvae.evaluation.classifier import REQUIRED_ACCURACY, accuracy, load_classifier


def test_cached_classifier_reads_test_digits_at_99_percent(mnist_dir):
    datamodule = MNISTDataModule(str(mnist_dir))
    classifier = load_classifier(datamodule)  # trains it (about a minute) the first time
    test = datamodule.splits["test"]
    assert classifier.test_accuracy >= REQUIRED_ACCURACY
    assert accuracy(classifier, test["image"], test["label"]) == pytest.approx(
        classifier.test_accuracy
    )

"""Classifiers that read the class of generated data (coherence).

A dataset whose examples share a class (`datamodule.class_key`: the digit of
MNIST, the background of the COCO demo) gets one classifier per kind of
non-categorical modality: a small CNN for images, an MLP for vectors, trained
on the training split and cached as a verified safetensors file in the
dataset's cache folder. The cache is keyed by what made it (the network, the
training settings and a SHA-256 of the inputs and classes it was trained
on, also in the file name): data of another `data.binarize` or `data.subset`
get a classifier of their own, with a log line, never another's. Classifiers
train on the whole training split: they evaluate, so the modalities that weak
supervision hides from the model are not hidden from them. Their test
accuracy is stored with them and reported.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning_utilities.core.rank_zero import rank_zero_warn
from rich.progress import track
from torch import Tensor, nn

from mwvae.data.cache import cached_tensors, tensors_digest
from mwvae.data.loader import InMemoryLoader

log = logging.getLogger(__name__)
REQUIRED_ACCURACY = 0.99  # below it, coherence would mostly measure the classifier
EPOCHS, SEED = 6, 0
# Small datasets train for more epochs, up to MIN_STEPS steps (the COCO demo's
# images: 72 epochs, 0.996 test accuracy, against 0.41 after 6) or MAX_EPOCHS.
MIN_STEPS, MAX_EPOCHS = 2000, 100
BATCH = 128


def epochs_for(num_examples: int) -> int:
    steps_per_epoch = math.ceil(num_examples / BATCH)
    return min(MAX_EPOCHS, max(EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch)))


def conv_block(in_channels: int, out_channels: int, kernel_size: int, norm: bool) -> list:
    norm_layer = [nn.BatchNorm2d(out_channels)] if norm else []
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    return [conv, *norm_layer, nn.ReLU()]


class Classifier(nn.Module):
    """A CNN for images (C x H x W), an MLP for vectors. Colour images get a
    deeper CNN with batch norm: on PolyMNIST's textured backgrounds the grey
    images' two-layer CNN reads only 0.967 of m0's test digits after 6 epochs."""

    def __init__(self, input_shape: Sequence[int], num_classes: int):
        super().__init__()
        if len(input_shape) == 3:
            channels, height, width = input_shape
            if channels == 1:
                layers = [*conv_block(1, 16, 5, False), nn.MaxPool2d(2)]
                layers += [*conv_block(16, 32, 5, False), nn.MaxPool2d(2)]
                width_out = 32
            else:
                layers = [*conv_block(channels, 32, 3, True), *conv_block(32, 32, 3, True)]
                layers += [nn.MaxPool2d(2), *conv_block(32, 64, 3, True), nn.MaxPool2d(2)]
                width_out = 64
            self.features = nn.Sequential(*layers, nn.Flatten())
            features = width_out * (height // 4) * (width // 4)
        else:
            self.features = nn.Flatten()
            features = int(torch.tensor(input_shape).prod())
        self.head = nn.Sequential(nn.Linear(features, 128), nn.ReLU(), nn.Linear(128, num_classes))
        self.test_accuracy = float("nan")

    def forward(self, inputs: Tensor) -> Tensor:
        return self.head(self.features(inputs))

    @torch.no_grad()
    def predict(self, inputs: Tensor, batch_size: int = 1000) -> Tensor:
        return torch.cat([self(chunk).argmax(-1) for chunk in inputs.split(batch_size)])

    @torch.no_grad()
    def embed(self, inputs: Tensor, batch_size: int = 1000) -> Tensor:
        """The penultimate layer (`features`, then the head's Linear + ReLU:
        128 values per input), where `mwvae.evaluation.frechet` compares real
        and generated data. No parameter of its own: cached classifiers serve."""
        hidden = self.head[:-1]
        return torch.cat([hidden(self.features(chunk)) for chunk in inputs.split(batch_size)])


def accuracy(classifier: Classifier, inputs: Tensor, classes: Tensor) -> float:
    return (classifier.predict(inputs) == classes).float().mean().item()


def train_classifier(inputs: Tensor, classes: Tensor, seed: int = SEED) -> Classifier:
    """Adam, the learning rate halved every EPOCHS-th of the way (every epoch on MNIST)."""
    torch.manual_seed(seed)
    epochs = epochs_for(len(inputs))
    classifier = Classifier(inputs.shape[1:], int(classes.max()) + 1)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5 ** (EPOCHS / epochs))
    loader = InMemoryLoader({"x": inputs, "y": classes}, batch_size=BATCH, shuffle=True, seed=seed)
    for epoch in track(range(epochs), description=f"classifier of {tuple(inputs.shape[1:])}"):
        loader.sampler.set_epoch(epoch)
        classifier.train()
        for batch in loader:
            loss = F.cross_entropy(classifier(batch["x"]), batch["y"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
    return classifier.eval()


def training_key(inputs: Tensor, classes: Tensor) -> str:
    """What a classifier is made of: its network, its training and its data."""
    epochs = epochs_for(len(inputs))
    network = repr(Classifier(inputs.shape[1:], int(classes.max()) + 1))  # its layers, in full
    recipe = f"{network}:epochs={epochs}:seed={SEED}:"
    data = tensors_digest({"inputs": inputs.cpu(), "classes": classes.cpu()})
    return hashlib.sha256((recipe + data).encode()).hexdigest()


def load_classifier(
    cache_dir: Path, name: str, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]
) -> Classifier:
    """The classifier of `name`'s data trained on exactly `train` (inputs,
    classes): from its cache in `cache_dir`, else trained now and cached."""
    inputs, classes = train
    num_classes = int(classes.max()) + 1
    key = training_key(inputs, classes)
    # The key in the name: caches of several data settings live side by side.
    cache_path = Path(cache_dir) / f"classifier_{name}_{key[:16]}.safetensors"
    if not cache_path.exists():
        log.info("No classifier of %s trained on these data (key %s) yet", name, key[:16])

    def build() -> dict[str, Tensor]:
        log.info("Training a classifier of %s, cached at %s", tuple(inputs.shape[1:]), cache_path)
        classifier = train_classifier(inputs, classes)
        found = accuracy(classifier, *test)
        log.info("Classifier test accuracy: %.4f", found)
        if found < REQUIRED_ACCURACY:
            rank_zero_warn(
                f"the classifier cached at {cache_path} reads only {found:.4f} of the test "
                "examples right: coherence scores will be capped by it"
            )
        return {**classifier.state_dict(), "test_accuracy": torch.tensor(found)}

    classifier = Classifier(inputs.shape[1:], num_classes)
    layout = {k: (tuple(v.shape), v.dtype) for k, v in classifier.state_dict().items()}
    layout["test_accuracy"] = ((), torch.float32)
    metadata = {"trained_on": key}
    state = dict(cached_tensors(cache_path, build, metadata, layout=layout))
    classifier.test_accuracy = float(state.pop("test_accuracy"))
    classifier.load_state_dict(state)
    return classifier.eval()


def load_classifiers(datamodule, modalities: Sequence[str]) -> dict[str, Classifier]:
    """One classifier per modality of `modalities` the datamodule can train
    one for (`datamodule.classifier_source(m)` names its training tensor;
    modalities of the same kind share it)."""
    class_key = getattr(datamodule, "class_key", None)
    if class_key is None:
        return {}
    datamodule.setup()
    splits, found, by_source = datamodule.splits, {}, {}
    for m in modalities:
        source = datamodule.classifier_source(m)
        if source is None:
            continue
        if source not in by_source:
            by_source[source] = load_classifier(
                Path(datamodule.cache_dir),
                source,
                (splits["train"][source], splits["train"][class_key]),
                (splits["test"][source], splits["test"][class_key]),
            )
        found[m] = by_source[source]
    return found

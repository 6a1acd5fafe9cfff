"""The MNIST digit classifier that scores generated images (coherence).

A small CNN, trained once per machine on the training split and cached as a
verified safetensors file next to the data (rebuilt, with a warning, if the
file is missing, truncated, altered or holds other tensors than the network's).
Its test accuracy is stored with it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import track
from torch import Tensor, nn

from mwvae.data.cache import cached_tensors
from mwvae.data.loader import InMemoryLoader

log = logging.getLogger(__name__)
REQUIRED_ACCURACY = 0.99


class DigitClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 1000) -> Tensor:
        return torch.cat([self(chunk).argmax(-1) for chunk in images.split(batch_size)])


def accuracy(classifier: DigitClassifier, images: Tensor, labels: Tensor) -> float:
    return (classifier.predict(images) == labels).float().mean().item()


def train_classifier(
    splits: dict[str, dict[str, Tensor]], epochs: int = 6, seed: int = 0
) -> DigitClassifier:
    torch.manual_seed(seed)
    classifier = DigitClassifier()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
    loader = InMemoryLoader(splits["train"], batch_size=128, shuffle=True, seed=seed)
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        classifier.train()
        for batch in track(loader, description=f"digit classifier, epoch {epoch + 1}/{epochs}"):
            loss = F.cross_entropy(classifier(batch["image"]), batch["label"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
    return classifier.eval()


def load_classifier(datamodule) -> DigitClassifier:
    """The cached classifier for this MNIST data directory, trained if needed."""
    datamodule.setup()
    splits = datamodule.splits
    path = Path(datamodule.data_dir) / "digit_classifier.safetensors"

    def build() -> dict[str, Tensor]:
        log.info("Training the digit classifier once; it is cached at %s", path)
        classifier = train_classifier(splits)
        test = accuracy(classifier, splits["test"]["image"], splits["test"]["label"])
        log.info("Digit classifier test accuracy: %.4f", test)
        if test < REQUIRED_ACCURACY:
            raise RuntimeError(f"the digit classifier reached only {test:.4f} test accuracy")
        return {**classifier.state_dict(), "test_accuracy": torch.tensor(test)}

    classifier = DigitClassifier()
    layout = {
        key: (tuple(value.shape), value.dtype) for key, value in classifier.state_dict().items()
    }
    layout["test_accuracy"] = ((), torch.float32)
    state = dict(cached_tensors(path, build, layout=layout))
    classifier.test_accuracy = float(state.pop("test_accuracy"))
    classifier.load_state_dict(state)
    return classifier.eval()

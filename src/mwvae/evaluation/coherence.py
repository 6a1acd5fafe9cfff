"""Coherence: do generated modalities agree? Plain accuracies (MultiVae
averages per class instead), scored by the digit classifier for images.

- label -> image: the digit the classifier reads in `reconstruct({label})`;
- image -> label: the class of `reconstruct({image})` (also logged in training);
- joint: decode samples of the prior into every modality and count how often
  the classifier's reading of each image agrees with the decoded label.
"""

from __future__ import annotations

import torch

from mwvae.models.base import Batch, MultimodalVAE


@torch.no_grad()
def label_to_image_coherence(
    model: MultimodalVAE, batch: Batch, classify, image: str = "image", label: str = "label"
) -> float:
    """Share of images generated from the label alone that show that digit."""
    generated = model.reconstruct({label: batch[label]})[image]
    return (classify(generated) == batch[label]).float().mean().item()


@torch.no_grad()
def image_to_label_coherence(
    model: MultimodalVAE, batch: Batch, image: str = "image", label: str = "label"
) -> float:
    """Share of labels decoded from the image alone that are its true class."""
    decoded = model.reconstruct({image: batch[image]})[label].argmax(-1)
    return (decoded == batch[label]).float().mean().item()


@torch.no_grad()
def joint_coherence(
    model: MultimodalVAE, classify, n: int = 10_000, image: str = "image", label: str = "label"
) -> float:
    """Share of prior samples whose decoded image shows the decoded label."""
    z = torch.randn(n, model.prior_dim, device=model.device)
    logits = model.decode_latent(z, [image, label])
    images = model.likelihoods[image].mean(logits[image])
    return (classify(images) == logits[label].argmax(-1)).float().mean().item()

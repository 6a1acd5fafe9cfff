"""Decoder likelihoods p(x_m | z), one per kind of modality.

A decoder outputs the distribution's parameters (logits, locations); a
likelihood turns them into a negative log-likelihood per example and into the
decoded value that users look at (pixel means, class probabilities). The log-likelihoods
are computed in float32 at least, whatever precision autocast gave the
logits: a sum over hundreds of pixels needs more than bf16's 8-bit mantissa.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from mwvae.gaussians import at_least_float32
from mwvae.special_tokens import PAD_ID


class Bernoulli:
    """Independent Bernoulli per pixel (values in [0, 1]); BCE summed over pixels."""

    def nll(self, logits: Tensor, target: Tensor) -> Tensor:
        bce = F.binary_cross_entropy_with_logits(at_least_float32(logits), target, reduction="none")
        return bce.flatten(1).sum(1)

    def mean(self, logits: Tensor) -> Tensor:
        return logits.sigmoid()


class Categorical:
    """A class index; the decoded value is the vector of class probabilities."""

    def nll(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(at_least_float32(logits), target, reduction="none")

    def mean(self, logits: Tensor) -> Tensor:
        return logits.softmax(-1)


class Gaussian:
    """Independent unit-variance Gaussians (e.g. sentence embeddings); the
    decoded value is the mean."""

    def nll(self, mean: Tensor, target: Tensor) -> Tensor:
        # bf16 means (autocast) minus float32 targets: promoted to float32
        return 0.5 * ((target - mean).square() + math.log(2 * math.pi)).flatten(1).sum(1)

    def mean(self, mean: Tensor) -> Tensor:
        return mean


class Laplace:
    """Independent Laplace distributions of a fixed scale around the decoded
    locations (an L1 reconstruction term): how MoPoE and MMVAE+ model
    PolyMNIST's pixels, with their scale 0.75, so that likelihoods compare."""

    SCALE = 0.75

    def __init__(self, scale: float = SCALE):
        self.scale = scale

    def nll(self, location: Tensor, target: Tensor) -> Tensor:
        deviation = (target - at_least_float32(location)).abs() / self.scale
        return (deviation + math.log(2 * self.scale)).flatten(1).sum(1)

    def mean(self, location: Tensor) -> Tensor:
        # The location is unbounded, but users see pixels and the coherence
        # classifiers read them: [0, 1] as the data. Clamping is monotone, so
        # the clamped location is still the median of the clamped pixel.
        return location.clamp(0.0, 1.0)


class TokenSequence:
    """Token ids (`mwvae.data.tokens`), each a categorical given z and the
    tokens before it, read through an autoregressive decoder
    (`mwvae.nets.TokenDecoder`): its output is a conditioning state, from
    which `nll` runs it teacher-forced; padding counts nothing. The decoded
    value is the greedy caption, as ids."""

    reads_decoder = True

    def __init__(self, decoder):
        if not hasattr(decoder, "teacher_forced"):
            raise TypeError(
                f"the tokens likelihood needs a sequence decoder (mwvae.nets.TokenDecoder), "
                f"got {type(decoder).__name__}"
            )
        self.decoder = decoder

    def nll(self, state: Tensor, target: Tensor) -> Tensor:
        # Positions after the batch's longest caption are padding: not computed at all.
        target = target[:, : int((target != PAD_ID).sum(1).max())]
        logits = at_least_float32(self.decoder.teacher_forced(state, target))
        nll = F.cross_entropy(
            logits.flatten(0, 1), target.flatten(), ignore_index=PAD_ID, reduction="none"
        )
        return nll.view(target.shape).sum(1)

    def mean(self, state: Tensor) -> Tensor:
        return self.decoder.generate(state)


LIKELIHOODS = {
    "bernoulli": Bernoulli,
    "categorical": Categorical,
    "gaussian": Gaussian,
    "laplace": Laplace,
    "tokens": TokenSequence,
}


def make_likelihood(name: str, decoder=None):
    """The likelihood `name`; one that reads its modality's decoder (tokens) gets `decoder`."""
    try:
        kind = LIKELIHOODS[name]
    except KeyError:
        raise ValueError(
            f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}"
        ) from None
    return kind(decoder) if getattr(kind, "reads_decoder", False) else kind()

"""Frechet distances between real and generated data in the classifiers' feature space.

FID (Heusel et al. 2017) with the dataset's own classifier in place of
Inception, whose weights cannot be fetched here: each modality read by a
classifier (`mwvae.evaluation.classifier`) and not categorical is embedded
by `Classifier.embed` (its 128-d penultimate layer), a Gaussian is fitted to
the features of real test data and to those of generated data, and

    FD = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}).

`fd_classifier/<m>` compares the first n test examples of m with n prior
samples z ~ N(0, I) decoded to m (`decode`, then the likelihood's mean):
MMVAE+'s unconditional FID (Palumbo et al. 2023). `fd_classifier/<R>_to_<m>`
compares them with m generated from the other modalities R of the same n
test examples, one posterior sample each (`reconstruct(sample=True)`), its
conditional FID. The numbers are in the classifier's units, not Inception's:
they compare models on one dataset (and one cached classifier), not with
published FIDs; like FID they are biased upwards at small n.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mwvae.evaluation.coherence import headline_style
from mwvae.evaluation.likelihood import subset_name
from mwvae.likelihoods import Categorical
from mwvae.models.base import MultimodalVAE


def gaussian_fit(features: Tensor) -> tuple[Tensor, Tensor]:
    """The mean and the (unbiased) covariance of `features` (n, d), in float64."""
    features = features.double()
    mean = features.mean(0)
    centered = features - mean
    return mean, centered.T @ centered / max(1, len(features) - 1)


def psd_sqrt(matrix: Tensor) -> Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix
    (eigendecomposition; eigenvalues below 0 by rounding count as 0)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def trace_sqrt_product(s1: Tensor, s2: Tensor) -> Tensor:
    """Tr((S_1 S_2)^{1/2}) = Tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2}), in float64: the
    inner matrix is symmetric PSD, so its eigenvalues are real and >= 0 (the
    product S_1 S_2 is not symmetric, and its general square root is not robust)."""
    root = psd_sqrt(s1.double())
    inner = root @ s2.double() @ root
    return torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()


def frechet_distance(mu1: Tensor, s1: Tensor, mu2: Tensor, s2: Tensor) -> float:
    """The Frechet (2-Wasserstein) distance between N(mu1, s1) and N(mu2, s2), squared."""
    mu1, mu2, s1, s2 = (t.double() for t in (mu1, mu2, s1, s2))
    mean_term = (mu1 - mu2).square().sum()
    return (mean_term + s1.trace() + s2.trace() - 2 * trace_sqrt_product(s1, s2)).item()


def features_distance(real: Tensor, generated: Tensor) -> float:
    """The Frechet distance between Gaussian fits of two sets of features."""
    return frechet_distance(*gaussian_fit(real), *gaussian_fit(generated))


@torch.no_grad()
def frechet_metrics(
    model: MultimodalVAE,
    split: dict[str, Tensor],
    classifiers: dict,
    n: int,
    batch_size: int,
    seed: int = 0,
) -> dict[str, float]:
    """`fd_classifier/<m>` and `fd_classifier/<R>_to_<m>` (module docstring)
    on the first `n` test examples of `split`, for every non-categorical m
    with a classifier. The prior and posterior draws come from their own
    streams (`seed`): the global RNG, and every other metric, are untouched."""
    names = [m for m in model.modality_names if m in split]
    targets = [
        m for m in names if m in classifiers and not isinstance(model.likelihoods[m], Categorical)
    ]
    n = min(n, len(split[names[0]])) if names else 0
    if not targets or n < 2:
        return {}
    device = model.device
    real = {m: classifiers[m].embed(split[m][:n].to(device), batch_size) for m in targets}
    generator = torch.Generator(device).manual_seed(seed)
    generated: dict[str, list[Tensor]] = {m: [] for m in targets}
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        z = torch.randn(size, model.prior_dim, generator=generator, device=device)
        for m, out in model.decode(z, targets).items():
            generated[m].append(classifiers[m].embed(model.likelihoods[m].mean(out), batch_size))
    metrics = {
        f"fd_classifier/{m}": features_distance(real[m], torch.cat(generated[m])) for m in targets
    }
    style = headline_style(model)
    devices = [] if device.type == "cpu" else [device]
    for m in targets:
        rest = [o for o in names if o != m]
        if not rest or not model.can_infer_from(rest):
            continue
        parts = []
        # `reconstruct` samples from the global generators: forked, seeded, restored.
        with torch.random.fork_rng(devices=devices, device_type=device.type):
            torch.default_generator.manual_seed(seed)
            if devices:
                torch.get_device_module(device.type).manual_seed(seed)
            for start in range(0, n, batch_size):
                observed = {
                    o: split[o][start : min(n, start + batch_size)].to(device) for o in rest
                }
                decoded = model.reconstruct(observed, sample=True, style=style)[m]
                parts.append(classifiers[m].embed(decoded, batch_size))
        key = f"fd_classifier/{subset_name(rest, names)}_to_{m}"
        metrics[key] = features_distance(real[m], torch.cat(parts))
    return metrics

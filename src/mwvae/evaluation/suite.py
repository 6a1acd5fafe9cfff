"""Every metric a model admits on a dataset's test split, and the figures.

`evaluate(model, datamodule, settings, output_dir)` names no modality: what
it computes follows from the model's modalities, their likelihood kinds,
what the model can infer from, and the dataset's class (`class_key`) and
classifiers. The keys (all under `test/`) are defined once, in the README's
metrics glossary.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mwvae.data.captioned import CaptionedSplit
from mwvae.data.loader import InMemoryLoader
from mwvae.evaluation.classifier import load_classifiers
from mwvae.evaluation.coherence import (
    Reader,
    coherence_by_observed,
    cross_coherences,
    headline_style,
    joint_coherence,
    readers,
    styled_key,
    target_styles,
)
from mwvae.evaluation.figures import (
    observation_settings,
    plot_caption_reconstructions,
    plot_conditional_generation,
    plot_latent_projection,
    plot_prior_samples,
    plot_reconstructions,
    plot_style_transfer,
)
from mwvae.evaluation.frechet import frechet_metrics
from mwvae.evaluation.likelihood import likelihood_metrics
from mwvae.evaluation.probe import linear_probe_accuracy
from mwvae.evaluation.retrieval import chance_recalls, pairwise_w2_squared, retrieval_recalls
from mwvae.evaluation.settings import EvaluationSettings, resolve_settings
from mwvae.gaussians import DiagGaussian
from mwvae.likelihoods import Categorical
from mwvae.models.base import MultimodalVAE
from mwvae.presence import Presence

Split = dict[str, torch.Tensor]


def whole(loader) -> Split:
    """Every batch of a loader, concatenated (derived modalities included)."""
    parts = list(loader)
    return {m: torch.cat([p[m] for p in parts]) for m in parts[0]}


class Means:
    """Example-weighted means of per-batch values, by key."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def add(self, key: str, values: torch.Tensor) -> None:
        """`values`: one per example (or a batch mean, with `len` examples)."""
        self.sums[key] = self.sums.get(key, 0.0) + values.double().sum().item()
        self.count[key] = self.count.get(key, 0) + values.numel()

    def compute(self) -> dict[str, float]:
        return {k: self.sums[k] / self.count[k] for k in self.sums}


@torch.no_grad()
def image_like(model: MultimodalVAE) -> list[str]:
    """The modalities decoded as pixels: whose decoded value (the likelihood's
    mean) is a C x H x W image, whatever the likelihood (Bernoulli, Laplace, ...)."""
    origin = torch.zeros(1, model.prior_dim, device=model.device, dtype=model.dtype)
    decoded = model.decode(origin)
    return [m for m, out in decoded.items() if model.likelihoods[m].mean(out).dim() == 4]


def categorical(model: MultimodalVAE) -> list[str]:
    return [m for m, lik in model.likelihoods.items() if isinstance(lik, Categorical)]


@torch.no_grad()
def reconstruction_errors(model: MultimodalVAE, split: Split, size: int) -> dict[str, float]:
    """Per observation setting, every modality reconstructed once per batch:
    the error rate of categorical ones, the MSE per dimension of the others
    (per style where the setting leaves a private code to impute)."""
    headline, means = headline_style(model), Means()
    for batch in InMemoryLoader(split, size, device=model.device):
        for setting, observed in observation_settings(model.modality_names).items():
            if not model.can_infer_from(observed):
                continue
            needed = {m: target_styles(model, m, observed) for m in model.modality_names}
            for style in dict.fromkeys(s for styles in needed.values() for s in styles):
                out = model.reconstruct({o: batch[o] for o in observed}, style=style)
                for m, lik in model.likelihoods.items():
                    if style not in needed[m]:
                        continue
                    if isinstance(lik, Categorical):
                        metric, error = "recon_error_rate", (out[m].argmax(-1) != batch[m]).float()
                    else:
                        metric, error = "recon_mse", (out[m] - batch[m]).square().flatten(1).mean(1)
                    means.add(styled_key(f"{metric}/{setting}/{m}", style, headline), error)
    return means.compute()


@torch.no_grad()
def coherences(
    model: MultimodalVAE, split: Split, classes, classifiers, size: int, joint_samples: int
) -> dict[str, float]:
    """Every S -> t coherence, their means by the number of observed
    modalities, and the joint one (see `mwvae.evaluation.coherence`)."""
    read = readers(model, {m: c.predict for m, c in classifiers.items()})
    own_truth = categorical(model)  # a class modality is its own truth
    means = Means()
    starts = range(0, len(classes), size)
    for start, batch in zip(starts, InMemoryLoader(split, size, device=model.device), strict=True):
        truth = classes[start : start + size].to(model.device)
        truths = {t: batch[t] if t in own_truth else truth for t in read}
        for key, hits in cross_coherences(model, batch, truths, read).items():
            means.add(key, hits.float())
    metrics = means.compute()
    names = [m for m in model.modality_names if m in split]
    metrics |= coherence_by_observed(model, names, read, metrics)
    if len(read) > 1:
        metrics["coherence/joint"] = joint_coherence(model, read, n=joint_samples)
    return metrics


@torch.no_grad()
def style_errors(model: MultimodalVAE, split: Split, size: int) -> dict[str, float]:
    """`style/mse_own_style/<m>` for each modality with a private code: m
    decoded from the shared code of the other modalities plus m's own private
    code, against the real m (compare `recon_mse*/<others>_only/<m>`, where
    the private code is imputed)."""
    means = Means()
    for m in model.private_modalities:
        others = [o for o in model.modality_names if o != m]
        if not others or not model.can_infer_from(others):
            continue
        for batch in InMemoryLoader(split, size, device=model.device):
            decoded = model.transfer_style({o: batch[o] for o in others}, {m: batch[m]})[m]
            means.add(f"style/mse_own_style/{m}", (decoded - batch[m]).square().flatten(1).mean(1))
    return means.compute()


def encode_means(model: MultimodalVAE, m: str, x: torch.Tensor, size: int) -> torch.Tensor:
    return torch.cat(
        [
            model.posterior({m: x[i : i + size].to(model.device)}).mu.cpu()
            for i in range(0, len(x), size)
        ]
    )


@torch.no_grad()
def probes(
    model: MultimodalVAE, train: Split, test: Split, class_key: str, size: int
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """`probe/<m>`: linear-probe accuracy of the class on the posterior mean of
    each non-categorical modality alone; returns the test means too."""
    metrics, means = {}, {}
    for m in model.modality_names:
        if m in categorical(model) or m not in train or not model.can_infer_from([m]):
            continue
        train_means, means[m] = (
            encode_means(model, m, train[m], size),
            encode_means(model, m, test[m], size),
        )
        metrics[f"probe/{m}"] = linear_probe_accuracy(
            train_means, train[class_key], means[m], test[class_key]
        )
    return metrics, means


@torch.no_grad()
def alignment(model: MultimodalVAE, split: Split, size: int) -> dict[str, float]:
    """`w2`: the model's own alignment term (mean pairwise W2^2 between the
    unimodal posteriors it aligns), as training logs it."""
    means = Means()
    for batch in InMemoryLoader(split, size, device=model.device):
        observed = {m: batch[m] for m in model.modality_names}
        posteriors = model.encode(observed)
        if len(posteriors) < 2:
            return {}
        w2 = model.alignment(posteriors, Presence.of(batch, observed))
        means.add("w2", w2.expand(len(next(iter(batch.values())))))
    return means.compute()


@torch.no_grad()
def retrieval(
    model: MultimodalVAE, captioned: CaptionedSplit, names: tuple[str, str], size: int
) -> dict[str, float]:
    """Image-caption recall@1/5/10 in both directions over every test caption,
    ranked by the W2^2 between the unimodal posteriors (the aligned parts) and
    by decoded similarity, with the chance levels. `names`: the modalities of
    the images and the captions."""
    image, caption = names
    if not (model.can_infer_from([image]) and model.can_infer_from([caption])):
        return {}
    images, captions = captioned.images.to(model.device), captioned.captions.to(model.device)
    owner, n = captioned.owner.to(model.device), len(captioned.images)

    def experts(m: str, x: torch.Tensor) -> DiagGaussian:
        parts = [
            model.aligned_parts(model.encode({m: x[i : i + size]}))[m]
            for i in range(0, len(x), size)
        ]
        return DiagGaussian(torch.cat([q.mu for q in parts]), torch.cat([q.logvar for q in parts]))

    def decoded(source: str, target: str, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [model.reconstruct({source: x[i : i + size]})[target] for i in range(0, len(x), size)]
        )

    q_image, q_caption = experts(image, images), experts(caption, captions)

    def rows(q: DiagGaussian, index: slice) -> DiagGaussian:
        return DiagGaussian(q.mu[index], q.logvar[index])

    decoded_images = decoded(caption, image, captions).flatten(1)
    decoded_captions = F.normalize(decoded(image, caption, images), dim=-1)
    unit_captions = F.normalize(captions, dim=-1)
    scores = {
        "posterior": (
            lambda r: -pairwise_w2_squared(rows(q_caption, r), q_image),
            lambda r: -pairwise_w2_squared(rows(q_image, r), q_caption),
        ),
        "decoded": (
            lambda r: -torch.cdist(decoded_images[r], images.flatten(1)),
            lambda r: decoded_captions[r] @ unit_captions.T,
        ),
    }
    metrics = {}
    for measure, (caption_to_image, image_to_caption) in scores.items():
        for key, value in retrieval_recalls(caption_to_image, image_to_caption, owner, n).items():
            metrics[f"retrieval/{measure}/{key}"] = value
    for key, value in chance_recalls(owner, n).items():
        metrics[f"retrieval/chance/{key}"] = value
    return metrics


def evaluate(
    model: MultimodalVAE,
    datamodule,
    settings: EvaluationSettings | dict[str, Any] | None = None,
    output_dir: Path | str = ".",
) -> dict[str, float]:
    """Every metric the model admits on the test split, as `test/<name>`, and
    the figures in `output_dir/figures`."""
    settings = resolve_settings(settings)
    model.eval()
    datamodule.setup()
    class_key = getattr(datamodule, "class_key", None)
    # Loaded (or trained, which draws random numbers) before seeding, so the
    # numbers do not depend on whether the classifiers were cached.
    classifiers = {
        m: c.to(model.device) for m, c in load_classifiers(datamodule, model.modality_names).items()
    }
    torch.manual_seed(settings.seed)
    size = settings.batch_size
    test = whole(datamodule.test_dataloader())
    data = {m: test[m] for m in model.modality_names}
    metrics = {f"evaluator_accuracy/{m}": c.test_accuracy for m, c in classifiers.items()}
    metrics |= reconstruction_errors(model, data, size)
    classes = datamodule.splits["test"][class_key] if class_key else None
    if classes is not None:
        metrics |= coherences(model, data, classes, classifiers, size, settings.joint_samples)
    metrics |= style_errors(model, data, size)
    metrics |= likelihood_metrics(model, data, **asdict(settings.likelihood), seed=settings.seed)
    means = {}
    if classes is not None:
        train = datamodule.splits["train"]
        probed, means = probes(model, train, {**data, class_key: classes}, class_key, size)
        metrics |= probed
    metrics |= alignment(model, data, size)
    captioned = getattr(datamodule, "captioned", {}).get("test")
    paired = tuple(datamodule.MODALITIES) if captioned is not None else None
    if paired is not None and set(paired) <= set(model.modality_names):
        metrics |= retrieval(model, captioned, paired, size)
    # Last, and from streams of its own: the numbers above do not depend on it.
    metrics |= frechet_metrics(model, data, classifiers, settings.fd_samples, size, settings.seed)
    if settings.figures:
        figures = Path(output_dir) / "figures"
        read = readers(model, {m: c.predict for m, c in classifiers.items()})
        draw_evaluation_figures(
            model, data, classes, means, figures, captioned, paired, read, settings.seed
        )
    return {f"test/{k}": v for k, v in metrics.items()}


@torch.no_grad()
def draw_evaluation_figures(
    model: MultimodalVAE,
    test: Split,
    classes: torch.Tensor | None,
    means: dict[str, torch.Tensor],
    figures_dir: Path,
    captioned: CaptionedSplit | None = None,
    paired: tuple[str, str] | None = None,
    read: dict[str, Reader] | None = None,
    seed: int = 0,
) -> list[Path]:
    """The observation settings' reconstruction grids of the first image-like
    modality (with the first categorical one's decoded classes), style
    transfer, or, with several image-like modalities and no categorical one
    (PolyMNIST), MoPoE's grids of prior samples and of conditional
    generation (annotated with the classes `read` reads); the latent
    projection, and COCO's caption figure."""
    paths = []
    name = type(model).__name__
    if paired is not None and set(paired) <= set(model.modality_names):
        rows = captioned.first_caption[:8]
        paths.append(
            plot_caption_reconstructions(
                model,
                captioned.images[:8].to(model.device),
                captioned.captions[rows].to(model.device),
                [captioned.texts[r] for r in rows],
                figures_dir / "caption_reconstructions.png",
                paired,
            )
        )
    batch = {m: t[:32].to(model.device) for m, t in test.items()}
    pixels = image_like(model)
    images, labels = pixels[:1], categorical(model)[:1]
    if images and labels:
        for setting, observed in observation_settings(model.modality_names).items():
            if model.can_infer_from(observed):
                title = f"{name}, observed: {' + '.join(observed)}"
                path = figures_dir / f"reconstructions_{setting}.png"
                paths.append(
                    plot_reconstructions(model, batch, observed, path, title, images[0], labels[0])
                )
        if images[0] in model.private_modalities:
            path = figures_dir / "style_transfer.png"
            paths.append(plot_style_transfer(model, batch, path, images[0], labels[0]))
    elif len(pixels) > 1 and not labels:
        truth = None if classes is None else classes[:32].to(model.device)
        path, title = figures_dir / "prior_samples.png", f"{name}: prior samples"
        paths.append(plot_prior_samples(model, pixels, path, title, read, seed=seed))
        path, title = figures_dir / "conditional_generation.png", f"{name}: conditional generation"
        paths.append(plot_conditional_generation(model, batch, pixels, path, title, read, truth))
    if means and classes is not None:
        m = next(iter(means))
        title = f"{name}: {m} posterior means, first two principal components"
        paths.append(
            plot_latent_projection(means[m], classes, figures_dir / "latent_projection.png", title)
        )
    return paths

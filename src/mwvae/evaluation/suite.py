"""Every metric a model admits on a dataset's test split, and the figures.

`evaluate(model, datamodule, settings)` names no modality: what it computes
follows from the model's modalities, their likelihood kinds, what the model
can infer from, and the dataset's class (`class_key`) and classifiers. The
keys (all under `test/`) are defined once, in the README's metrics glossary.
`draw_evaluation_figures(model, datamodule, settings, output_dir)` draws the
figures apart, so that the metrics are kept before any figure can fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mwvae.data.captioned import CaptionedSplit
from mwvae.data.loader import InMemoryLoader
from mwvae.evaluation.attributes import caption_attribute_metrics
from mwvae.evaluation.caption_scores import caption_score_metrics
from mwvae.evaluation.classifier import Classifier, load_classifiers
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
    draw_safely,
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
from mwvae.evaluation.retrieval import (
    chance_recalls,
    fused_caption_recalls,
    pairwise_w2_squared,
    retrieval_recalls,
)
from mwvae.evaluation.settings import EvaluationSettings, resolve_settings
from mwvae.evaluation.written_captions import written_captions
from mwvae.gaussians import DiagGaussian
from mwvae.likelihoods import Categorical, TokenSequence
from mwvae.models.base import MultimodalVAE
from mwvae.presence import Presence
from mwvae.special_tokens import PAD_ID

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
                for m in model.modality_names:
                    if style not in needed[m]:
                        continue
                    metric, error = reconstruction_error(model, m, out[m], batch[m])
                    means.add(styled_key(f"recon_{metric}/{setting}/{m}", style, headline), error)
    return means.compute()


def reconstruction_error(
    model: MultimodalVAE, m: str, decoded: torch.Tensor, target: torch.Tensor
) -> tuple[str, torch.Tensor]:
    """How far decoded m is from the real m, per example, and the measure's
    name: the error rate of a categorical m, the token error rate of token
    captions, the mean squared error per dimension of the others."""
    likelihood = model.likelihoods[m]
    if isinstance(likelihood, Categorical):
        return "error_rate", (decoded.argmax(-1) != target).float()
    if isinstance(likelihood, TokenSequence):
        return "token_error_rate", token_errors(decoded, target)
    return "mse", (decoded - target).square().flatten(1).mean(1)


def token_errors(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per caption, the share of its tokens ([EOS] included) that the generated ids miss."""
    real = target != PAD_ID
    return ((generated != target) & real).sum(1) / real.sum(1).clamp(min=1)


def class_readers(datamodule, classifiers: dict) -> dict[str, Callable]:
    """What reads the class of each modality's decoded values: its classifier,
    or a rule of the dataset (`rule_readers`: the COCO demo's token captions)."""
    rules = getattr(datamodule, "rule_readers", dict)()
    return {m: c.predict for m, c in classifiers.items()} | rules


@torch.no_grad()
def coherences(
    model: MultimodalVAE, split: Split, classes, reading: dict, size: int, joint_samples: int
) -> dict[str, float]:
    """Every S -> t coherence, their means by the number of observed
    modalities, and the joint one (see `mwvae.evaluation.coherence`);
    `reading`: `class_readers`."""
    read = readers(model, reading)
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
    """`style/<measure>_own_style/<m>` for each modality with a private code:
    m decoded from the shared code of the other modalities plus m's own
    private code, against the real m, by `reconstruction_error`'s measure
    (compare `recon_<measure>*/<others>_only/<m>`, where the private code is
    imputed)."""
    means = Means()
    for m in model.private_modalities:
        others = [o for o in model.modality_names if o != m]
        if not others or not model.can_infer_from(others):
            continue
        for batch in InMemoryLoader(split, size, device=model.device):
            decoded = model.transfer_style({o: batch[o] for o in others}, {m: batch[m]})[m]
            metric, error = reconstruction_error(model, m, decoded, batch[m])
            means.add(f"style/{metric}_own_style/{m}", error)
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
) -> dict[str, float]:
    """`probe/<m>`: linear-probe accuracy of the class on the posterior mean of
    each non-categorical modality alone."""
    metrics = {}
    for m in model.modality_names:
        if m in categorical(model) or m not in train or not model.can_infer_from([m]):
            continue
        metrics[f"probe/{m}"] = linear_probe_accuracy(
            encode_means(model, m, train[m], size),
            train[class_key],
            encode_means(model, m, test[m], size),
            test[class_key],
        )
    return metrics


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
    ranked by the W2^2 between the unimodal posteriors (the aligned parts) and,
    for caption embeddings, by decoded similarity, with the chance levels; and
    caption -> image with each image's captions fused (`fused_caption_recalls`).
    `names`: the modalities of the images and the captions."""
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

    scores = {
        "posterior": (
            lambda r: -pairwise_w2_squared(rows(q_caption, r), q_image),
            lambda r: -pairwise_w2_squared(rows(q_image, r), q_caption),
        )
    }
    # Decoded similarity needs captions that are vectors (embeddings), not token ids.
    if captions.is_floating_point():
        decoded_images = decoded(caption, image, captions).flatten(1)
        decoded_captions = F.normalize(decoded(image, caption, images), dim=-1)
        unit_captions = F.normalize(captions, dim=-1)
        scores["decoded"] = (
            lambda r: -torch.cdist(decoded_images[r], images.flatten(1)),
            lambda r: decoded_captions[r] @ unit_captions.T,
        )
    metrics = {}
    for measure, (caption_to_image, image_to_caption) in scores.items():
        for key, value in retrieval_recalls(caption_to_image, image_to_caption, owner, n).items():
            metrics[f"retrieval/{measure}/{key}"] = value
    for key, value in chance_recalls(owner, n).items():
        metrics[f"retrieval/chance/{key}"] = value
    for key, value in fused_caption_recalls(q_caption, q_image, owner).items():
        metrics[f"retrieval/posterior_fused/{key}"] = value
    return metrics


def evaluate(
    model: MultimodalVAE,
    datamodule,
    settings: EvaluationSettings | dict[str, Any] | None = None,
    classifiers: dict[str, Classifier] | None = None,
) -> dict[str, float]:
    """Every metric the model admits on the test split, as `test/<name>` (the
    figures are `draw_evaluation_figures`', drawn once these are kept).
    `classifiers`: those `load_classifiers` gave for this datamodule, when the
    caller has them (loading hashes the training data); None: loaded here."""
    settings = resolve_settings(settings)
    model.eval()
    datamodule.setup()
    class_key = getattr(datamodule, "class_key", None)
    # Loaded (or trained, which draws random numbers) before seeding, so the
    # numbers do not depend on whether the classifiers were cached.
    if classifiers is None:
        classifiers = load_classifiers(datamodule, model.modality_names)
    classifiers = {m: c.to(model.device) for m, c in classifiers.items()}
    torch.manual_seed(settings.seed)
    size = settings.batch_size
    test = whole(datamodule.test_dataloader())
    data = {m: test[m] for m in model.modality_names}
    metrics = {f"evaluator_accuracy/{m}": c.test_accuracy for m, c in classifiers.items()}
    metrics |= reconstruction_errors(model, data, size)
    written = written_captions(model, data, size)
    metrics |= caption_attribute_metrics(datamodule, data, written)
    classes = datamodule.splits["test"][class_key] if class_key else None
    if classes is not None:
        reading = class_readers(datamodule, classifiers)
        metrics |= coherences(model, data, classes, reading, size, settings.joint_samples)
    metrics |= style_errors(model, data, size)
    metrics |= likelihood_metrics(model, data, **asdict(settings.likelihood), seed=settings.seed)
    if classes is not None:
        train = datamodule.splits["train"]
        metrics |= probes(model, train, {**data, class_key: classes}, class_key, size)
    metrics |= alignment(model, data, size)
    captioned, paired = captions(datamodule, model)
    if captioned is not None:
        metrics |= retrieval(model, captioned, paired, size)
        if written:
            metrics |= caption_score_metrics(written, caption_text(datamodule), captioned)
    # Last, and from streams of its own: the numbers above do not depend on it.
    metrics |= frechet_metrics(model, data, classifiers, settings.fd_samples, size, settings.seed)
    return {f"test/{k}": v for k, v in metrics.items()}


def captions(datamodule, model: MultimodalVAE) -> tuple[CaptionedSplit | None, tuple | None]:
    """The captioned test split and its (image, caption) modalities, when the
    data have captions and the model reads both; else (None, None)."""
    captioned = getattr(datamodule, "captioned", {}).get("test")
    paired = tuple(datamodule.MODALITIES) if captioned is not None else None
    if paired is None or not set(paired) <= set(model.modality_names):
        return None, None
    return captioned, paired


def draw_evaluation_figures(
    model: MultimodalVAE,
    datamodule,
    settings: EvaluationSettings | dict[str, Any] | None = None,
    output_dir: Path | str = ".",
    classifiers: dict[str, Classifier] | None = None,
) -> list[Path]:
    """The evaluation's figures (`figure_plan`) in `output_dir/figures`, from
    the test split and the cached classifiers; one that fails is logged and
    skipped. `classifiers`: as `evaluate`'s (None: loaded here)."""
    settings = resolve_settings(settings)
    model.eval()
    datamodule.setup()
    class_key = getattr(datamodule, "class_key", None)
    if classifiers is None:
        classifiers = load_classifiers(datamodule, model.modality_names)
    read = readers(
        model, class_readers(datamodule, {m: c.to(model.device) for m, c in classifiers.items()})
    )
    test = whole(datamodule.test_dataloader())
    classes = datamodule.splits["test"][class_key] if class_key else None
    captioned, paired = captions(datamodule, model)
    plan = figure_plan(
        model,
        {m: test[m] for m in model.modality_names},
        classes,
        Path(output_dir) / "figures",
        captioned,
        paired,
        read,
        settings.seed,
        settings.batch_size,
        caption_text(datamodule),
    )
    return draw_planned(plan)


def caption_text(datamodule) -> Callable[[torch.Tensor], list[str]] | None:
    """Token ids -> text, when the data's captions are tokens (their vocabulary)."""
    vocabulary = getattr(datamodule, "vocabulary", None)
    return None if vocabulary is None else vocabulary.decode


def one_of_each_class(classes: torch.Tensor, limit: int = 10) -> torch.Tensor:
    """The first example of each class, in class order (at most `limit`
    classes): every digit once."""
    return torch.stack([(classes == c).nonzero()[0, 0] for c in classes.unique()[:limit]])


def figure_plan(
    model: MultimodalVAE,
    test: Split,
    classes: torch.Tensor | None,
    figures_dir: Path,
    captioned: CaptionedSplit | None = None,
    paired: tuple[str, str] | None = None,
    read: dict[str, Reader] | None = None,
    seed: int = 0,
    batch_size: int = 1000,
    caption_text: Callable[[torch.Tensor], list[str]] | None = None,
) -> dict[str, Callable[[], Path]]:
    """What to draw, by figure name: the observation settings'
    reconstructions of the first image-like modality and the first
    categorical one, and style transfer; or, with several image-like
    modalities and no categorical one (PolyMNIST), MoPoE's grids of prior
    samples and of conditional generation (annotated with the classes `read`
    reads); the latent projection, and COCO's caption figure (with the
    captions generated, given `caption_text`: token ids -> text)."""
    plan: dict[str, Callable[[], Path]] = {}
    name = model.display_name
    if captioned is not None:
        rows = captioned.first_caption[:8]
        plan["caption_reconstructions"] = partial(
            plot_caption_reconstructions,
            model,
            captioned.images[:8].to(model.device),
            captioned.captions[rows].to(model.device),
            [captioned.texts[r] for r in rows],
            figures_dir / "caption_reconstructions.png",
            paired,
            caption_text,
        )
    batch = {m: t[:32].to(model.device) for m, t in test.items()}
    pixels = image_like(model)
    images, labels = pixels[:1], categorical(model)[:1]
    if images and labels:
        keys = (images[0], labels[0])
        truth = test[keys[1]] if classes is None else classes
        shown = one_of_each_class(truth)
        settings = {
            setting: observed
            for setting, observed in observation_settings(model.modality_names).items()
            if model.can_infer_from(observed) and set(observed) & set(keys)
        }
        plan["reconstructions"] = partial(
            plot_reconstructions,
            model,
            {m: t[shown].to(model.device) for m, t in test.items()},
            settings,
            figures_dir / "reconstructions.png",
            f"{name}: reconstructions from each observation setting",
            keys,
            truth[shown],
            read,
        )
        if images[0] in model.private_modalities:
            plan["style_transfer"] = partial(
                plot_style_transfer, model, batch, figures_dir / "style_transfer.png", *keys
            )
    elif len(pixels) > 1 and not labels:
        truth = None if classes is None else classes[:32].to(model.device)
        plan["prior_samples"] = partial(
            plot_prior_samples,
            model,
            pixels,
            figures_dir / "prior_samples.png",
            f"{name}: prior samples",
            read,
            seed=seed,
        )
        plan["conditional_generation"] = partial(
            plot_conditional_generation,
            model,
            batch,
            pixels,
            figures_dir / "conditional_generation.png",
            f"{name}: conditional generation",
            read,
            truth,
        )
    encoded = [m for m in model.modality_names if m not in categorical(model)]
    encoded = [m for m in encoded if model.can_infer_from([m])]
    if encoded and classes is not None:
        plan["latent_projection"] = partial(
            project_latents,
            model,
            encoded[0],
            test,
            classes,
            figures_dir / "latent_projection.png",
            batch_size,
        )
    return plan


@torch.no_grad()
def project_latents(
    model: MultimodalVAE,
    m: str,
    test: Split,
    classes: torch.Tensor,
    out_path: Path,
    batch_size: int,
) -> Path:
    """The latent projection of m's posterior means of the test split."""
    title = f"{model.display_name}: posterior means of the {m}, by class"
    means = encode_means(model, m, test[m], batch_size)
    return plot_latent_projection(means, classes, out_path, title)


def draw_planned(plan: dict[str, Callable[[], Path]]) -> list[Path]:
    """Every figure of a `figure_plan`: one that fails is logged and skipped
    (`draw_safely`), the others are drawn."""
    drawn = [draw_safely(name, draw) for name, draw in plan.items()]
    return [path for path in drawn if path is not None]

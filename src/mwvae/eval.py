"""Evaluate a checkpoint: `python -m mwvae.eval ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt`.

`evaluate(model, datamodule, settings, output_dir)` computes every metric the
model admits on the test split and draws the figures; training calls it at
the end of every run. Metric names (all under `test/`):

- `recon_mse/<setting>/<m>`: mean squared error per dimension of modality m
  reconstructed from the observed `setting` (`both`, `image_only`, ...), and
  `recon_error_rate/<setting>/<m>` for categorical modalities;
- `coherence/image_to_label`, `coherence/label_to_image` (the digit
  classifier reads the generated image), `coherence/joint` (prior samples);
  for `mnist3` also `coherence/image_to_image2` through the label;
- `loglik/joint`, `loglik/<m>`, `loglik/image_given_label`: importance-
  weighted estimates with K samples on the first `likelihood.num_samples`;
- `probe/image`: linear-probe accuracy of the digit on the image posterior mean;
- `w2`: mean W2^2 between the unimodal posteriors;
- `style/mse_label_plus_own_style` (FMW-VAE): the image decoded from its
  label and its own private code, against the real image;
- `retrieval/<posterior|decoded>/<caption_to_image|image_to_caption>/r@<k>`
  (COCO): recall@1/5/10 over every test caption, ranked by minus the W2^2
  between the unimodal posteriors or by the similarity of the decoded
  modality to the real one; `retrieval/chance/...` is a random ranking's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.progress import track

from mwvae import UntrustedFileError, check_targets, load_model
from mwvae.data.coco import CaptionedSplit
from mwvae.evaluation.classifier import load_classifier
from mwvae.evaluation.coherence import (
    image_to_label_coherence,
    joint_coherence,
    label_to_image_coherence,
)
from mwvae.evaluation.figures import (
    observation_settings,
    plot_caption_reconstructions,
    plot_latent_projection,
    plot_reconstructions,
    plot_style_transfer,
)
from mwvae.evaluation.likelihood import importance_log_likelihood
from mwvae.evaluation.probe import linear_probe_accuracy
from mwvae.evaluation.retrieval import chance_recalls, pairwise_w2_squared, retrieval_recalls
from mwvae.gaussians import DiagGaussian, mean_pairwise_w2_squared
from mwvae.likelihoods import Categorical
from mwvae.models.base import Batch, MultimodalVAE

log = logging.getLogger(__name__)

DEFAULTS = {
    "seed": 0,
    "batch_size": 1000,
    "likelihood": {"k": 1000, "num_samples": 1000, "batch_size": 20},
    "joint_samples": 10_000,
    "figures": True,
}


def batches(split: dict[str, torch.Tensor], size: int, device) -> Iterator[Batch]:
    n = len(next(iter(split.values())))
    for start in range(0, n, size):
        yield {m: t[start : start + size].to(device) for m, t in split.items()}


def whole(loader) -> dict[str, torch.Tensor]:
    """Every batch of a loader, concatenated (derived modalities included)."""
    parts = list(loader)
    return {m: torch.cat([p[m] for p in parts]) for m in parts[0]}


def mean_over(split, size, device, fn) -> float:
    """The example-weighted mean of fn(batch) over a split."""
    total, count = 0.0, 0
    for batch in batches(split, size, device):
        n = len(next(iter(batch.values())))
        total += fn(batch) * n
        count += n
    return total / count


@torch.no_grad()
def reconstruction_errors(model: MultimodalVAE, split, size: int) -> dict[str, float]:
    """Per observation setting, every modality reconstructed once per batch:
    the error rate of categorical ones, the MSE per dimension of the others."""
    names = {
        m: f"recon_error_rate/{{}}/{m}" if isinstance(lik, Categorical) else f"recon_mse/{{}}/{m}"
        for m, lik in model.likelihoods.items()
    }
    sums: dict[str, float] = {}
    count = 0
    for batch in batches(split, size, model.device):
        n = len(next(iter(batch.values())))
        count += n
        for setting, observed in observation_settings(model.modality_names).items():
            if not model.can_infer_from(observed):
                continue
            out = model.reconstruct({o: batch[o] for o in observed})
            for m, pattern in names.items():
                if isinstance(model.likelihoods[m], Categorical):
                    error = (out[m].argmax(-1) != batch[m]).float().mean()
                else:
                    error = (out[m] - batch[m]).square().mean()
                key = pattern.format(setting)
                sums[key] = sums.get(key, 0.0) + error.item() * n
    return {key: total / count for key, total in sums.items()}


@torch.no_grad()
def style_errors(model, test, size: int) -> dict[str, float]:
    """FMW-VAE: does the private code carry the handwriting? The image decoded
    from its label plus its own private code, against the image decoded from
    the label plus the class-mean private code (`recon_mse/label_only/image`
    with `style: class_mean`), both compared with the real image."""

    def own_style(batch):
        shared = model.posterior({"label": batch["label"]}).mu
        style = model.split(model.encoders["image"](batch["image"]))[1].mu
        decoded = model.likelihoods["image"].mean(
            model.decoders["image"](torch.cat([shared, style], -1))
        )
        return (decoded - batch["image"]).square().mean().item()

    return {"style/mse_label_plus_own_style": mean_over(test, size, model.device, own_style)}


@torch.no_grad()
def log_likelihoods(
    model: MultimodalVAE, split, k: int, num_samples: int, size: int
) -> dict[str, float]:
    if num_samples == 0:  # switched off (evaluation.likelihood.num_samples=0)
        return {}
    names = model.modality_names
    subsets = {"joint": names} if len(names) > 1 else {}
    subsets.update({m: [m] for m in names})
    subset = {m: t[:num_samples] for m, t in split.items()}
    metrics = {}
    for name, scored in subsets.items():
        if not model.can_infer_from(scored):
            continue
        estimates = [
            importance_log_likelihood(model, batch, scored, k=k)
            for batch in track(
                list(batches(subset, size, model.device)), description=f"log p({name}), K={k}"
            )
        ]
        metrics[f"loglik/{name}"] = torch.cat(estimates).mean().item()
    if {"joint", "label"} <= {k.split("/")[1] for k in metrics} and "image" in names:
        metrics["loglik/image_given_label"] = metrics["loglik/joint"] - metrics["loglik/label"]
    return metrics


@torch.no_grad()
def coherences(
    model: MultimodalVAE, split, size: int, classify, joint_samples: int
) -> dict[str, float]:
    names = set(model.modality_names)
    metrics = {}
    if {"image", "label"} <= names:
        if model.can_infer_from(["image"]):
            metrics["coherence/image_to_label"] = mean_over(
                split, size, model.device, lambda b: image_to_label_coherence(model, b)
            )
        if model.can_infer_from(["label"]):
            metrics["coherence/label_to_image"] = mean_over(
                split, size, model.device, lambda b: label_to_image_coherence(model, b, classify)
            )
        metrics["coherence/joint"] = joint_coherence(model, classify, n=joint_samples)
    if {"image", "label", "image2"} <= names and model.can_infer_from(["image"]):

        def through_label(batch):
            label = model.reconstruct({"image": batch["image"]})["label"].argmax(-1)
            image2 = model.reconstruct({"label": label})["image2"]
            return (classify(image2) == batch["label"]).float().mean().item()

        metrics["coherence/image_to_image2"] = mean_over(split, size, model.device, through_label)
    return metrics


def encode_all(model: MultimodalVAE, m: str, x: torch.Tensor, size: int) -> DiagGaussian:
    """The posteriors q(z | x_m) of a whole tensor, batch by batch."""
    parts = [model.posterior({m: x[i : i + size].to(model.device)}) for i in range(0, len(x), size)]
    return DiagGaussian(torch.cat([q.mu for q in parts]), torch.cat([q.logvar for q in parts]))


def decode_all(model: MultimodalVAE, source: str, target: str, x: torch.Tensor, size: int):
    """`target` decoded from the posterior of `source`, batch by batch."""
    return torch.cat(
        [
            model.reconstruct({source: x[i : i + size].to(model.device)})[target]
            for i in range(0, len(x), size)
        ]
    )


@torch.no_grad()
def retrieval(model: MultimodalVAE, captioned: CaptionedSplit, size: int) -> dict[str, float]:
    """Image-caption recall@1/5/10 in both directions over every test caption,
    ranked by posterior W2 and by decoded similarity, with the chance levels."""
    if not (model.can_infer_from(["image"]) and model.can_infer_from(["caption"])):
        return {}
    images, captions = captioned.images.to(model.device), captioned.captions.to(model.device)
    owner, n = captioned.owner.to(model.device), len(captioned.images)
    q_image = encode_all(model, "image", images, size)
    q_caption = encode_all(model, "caption", captions, size)

    def rows(q: DiagGaussian, index: slice) -> DiagGaussian:
        return DiagGaussian(q.mu[index], q.logvar[index])

    decoded_images = decode_all(model, "caption", "image", captions, size).flatten(1)
    decoded_captions = F.normalize(decode_all(model, "image", "caption", images, size), dim=-1)
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


@torch.no_grad()
def representation(
    model: MultimodalVAE, train, test, size: int
) -> tuple[dict[str, float], torch.Tensor | None]:
    """Probe accuracy and mean W2^2; returns the test image posterior means too."""
    metrics = {}
    means = None
    if "image" in model.modality_names and "label" in test and model.can_infer_from(["image"]):

        def encode(split):
            return torch.cat(
                [
                    model.posterior({"image": b["image"]}).mu.cpu()
                    for b in batches(split, size, model.device)
                ]
            )

        train_means, means = encode(train), encode(test)
        metrics["probe/image"] = linear_probe_accuracy(
            train_means, train["label"], means, test["label"]
        )
    if len(model.modality_names) > 1 and all(
        model.can_infer_from([m]) for m in model.modality_names
    ):
        metrics["w2"] = mean_over(
            test,
            size,
            model.device,
            lambda b: (
                mean_pairwise_w2_squared([model.posterior({m: b[m]}) for m in model.modality_names])
                .mean()
                .item()
            ),
        )
    return metrics, means


def evaluate(
    model: MultimodalVAE, datamodule, settings: dict[str, Any], output_dir: Path
) -> dict[str, float]:
    """Every metric the model admits on the test split, as `test/<name>`, and
    the figures in `output_dir/figures`."""
    settings = {
        **DEFAULTS,
        **settings,
        "likelihood": {**DEFAULTS["likelihood"], **settings.get("likelihood", {})},
    }
    model.eval()
    datamodule.setup()
    scores_images = {"image", "label"} <= set(model.modality_names)
    # Loaded (or trained, which draws random numbers) before seeding, so the
    # numbers do not depend on whether the classifier was cached.
    classifier = load_classifier(datamodule).to(model.device) if scores_images else None
    torch.manual_seed(settings["seed"])
    splits, size = datamodule.splits, settings["batch_size"]
    test = whole(datamodule.test_dataloader())
    test = {m: t for m, t in test.items() if m in model.modality_names or m == "label"}
    metrics = reconstruction_errors(model, {m: test[m] for m in model.modality_names}, size)
    if scores_images:
        metrics |= coherences(model, test, size, classifier.predict, settings["joint_samples"])
    if hasattr(model, "split") and {"image", "label"} <= set(model.modality_names):
        metrics |= style_errors(model, test, size)
    lk = settings["likelihood"]
    metrics |= log_likelihoods(
        model,
        {m: test[m] for m in model.modality_names},
        lk["k"],
        lk["num_samples"],
        lk["batch_size"],
    )
    represented, means = representation(model, splits["train"], test, size)
    metrics |= represented
    captioned = getattr(datamodule, "captioned", {}).get("test")
    if captioned is not None:
        metrics |= retrieval(model, captioned, size)
    if settings["figures"]:
        draw_evaluation_figures(model, test, means, output_dir / "figures", captioned)
    return {f"test/{k}": v for k, v in metrics.items()}


@torch.no_grad()
def draw_evaluation_figures(
    model: MultimodalVAE, test, means, figures_dir: Path, captioned: CaptionedSplit | None = None
) -> list[Path]:
    paths = []
    if captioned is not None and {"image", "caption"} <= set(model.modality_names):
        rows = captioned.first_caption[:8]
        paths.append(
            plot_caption_reconstructions(
                model,
                captioned.images[:8].to(model.device),
                captioned.captions[rows].to(model.device),
                [captioned.texts[r] for r in rows],
                figures_dir / "caption_reconstructions.png",
            )
        )
    batch = {m: t[:32].to(model.device) for m, t in test.items()}
    if {"image", "label"} <= set(model.modality_names):
        for setting, observed in observation_settings(model.modality_names).items():
            if model.can_infer_from(observed):
                title = f"{type(model).__name__}, observed: {' + '.join(observed)}"
                paths.append(
                    plot_reconstructions(
                        model,
                        batch,
                        observed,
                        figures_dir / f"reconstructions_{setting}.png",
                        title,
                    )
                )
    if means is not None:
        title = f"{type(model).__name__}: image posterior means, first two principal components"
        paths.append(
            plot_latent_projection(
                means, test["label"], figures_dir / "latent_projection.png", title
            )
        )
    if hasattr(model, "split") and {"image", "label"} <= set(model.modality_names):
        paths.append(plot_style_transfer(model, batch, figures_dir / "style_transfer.png"))
    return paths


def run_config(ckpt_path: Path) -> DictConfig:
    """The resolved config saved in the checkpoint's run folder."""
    path = Path(ckpt_path).resolve().parent.parent / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: evaluate checkpoints inside a run folder of mwvae.train"
        )
    return OmegaConf.load(path)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        model = load_model(cfg.ckpt_path)
        run = run_config(cfg.ckpt_path)
        check_targets(OmegaConf.to_container(run.data), "the run folder's config.yaml")
    except UntrustedFileError as error:
        raise SystemExit(f"error: {error}") from None
    datamodule = instantiate(run.data, _recursive_=False)
    output_dir = Path(cfg.output_dir or Path(cfg.ckpt_path).resolve().parent.parent / "eval")
    settings = OmegaConf.to_container(cfg.settings, resolve=True)
    metrics = evaluate(model, datamodule, settings, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    for name, value in sorted(metrics.items()):
        log.info("%-45s %.4f", name, value)
    log.info("Wrote %s", output_dir / "metrics.json")


if __name__ == "__main__":
    main()

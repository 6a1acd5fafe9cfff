"""Figures of a run: training curves (the paper's Figs. 8, 10, 12),
reconstruction grids of the observation settings (Figs. 9, 11, 13) and, for
data of several image modalities (PolyMNIST), MoPoE's grids of prior
samples and of conditional generation."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mwvae.models.base import Batch, MultimodalVAE  # noqa: E402


def read_history(path: Path) -> list[dict[str, float]]:
    with Path(path).open() as file:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(file)]


def _curve(rows: list[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
    points = [(row["step"], row[key]) for row in rows if key in row]
    return [p[0] for p in points], [p[1] for p in points]


def _term_order(term: str) -> tuple[int, str]:
    for rank, prefix in enumerate(("loss", "elbo", "w2", "coherence/", "recon/", "kl/")):
        if term.startswith(prefix):
            return rank, term
    return 99, term


def _moving_average(values: list[float], window: int = 10) -> list[float]:
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1))
        for i in range(len(values))
    ]


def plot_training_curves(history_path: Path, out_path: Path) -> Path:
    """One panel per term (loss, ELBO, W2, accuracies, each reconstruction and
    KL term), as in the paper's Figs. 8, 10 and 12: training values at the
    logging steps (thin) with their moving average, validation means per epoch."""
    rows = read_history(history_path)
    terms = sorted(
        {k.split("/", 1)[1] for row in rows for k in row if k.startswith(("train/", "val/"))}
        - {"beta"},
        key=_term_order,
    )
    cols = min(4, len(terms))
    grid_rows = math.ceil(len(terms) / cols)
    fig, axes = plt.subplots(grid_rows, cols, figsize=(4 * cols, 3 * grid_rows), squeeze=False)
    for ax, term in zip(axes.flat, terms, strict=False):
        steps, values = _curve(rows, f"train/{term}")
        if steps:
            (line,) = ax.plot(steps, values, linewidth=0.6, alpha=0.35)
            ax.plot(steps, _moving_average(values), color=line.get_color(), label="train")
        steps, values = _curve(rows, f"val/{term}")
        if steps:
            ax.plot(steps, values, "o-", markersize=3, linewidth=1, label="val (epoch)")
        ax.set_title(term)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        if term.startswith(("recon/", "kl/", "w2")):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(terms) :]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, out_path)


def observation_settings(modalities: list[str]) -> dict[str, list[str]]:
    """`both`/`all` and `<m>_only` for each modality: what the encoder sees."""
    settings = {f"{m}_only": [m] for m in modalities}
    if len(modalities) > 1:
        settings = {"both" if len(modalities) == 2 else "all": list(modalities), **settings}
    return settings


def plot_reconstructions(
    model: MultimodalVAE,
    batch: Batch,
    observed: list[str],
    out_path: Path,
    title: str,
    image_key: str,
    label_key: str,
    columns: int = 8,
) -> Path:
    """Pairs of rows: the inputs (an unobserved image is left blank) with their
    true labels, then the decoded images with the decoded labels, green when
    right and red when wrong."""
    images, labels = batch[image_key].cpu(), batch[label_key].cpu()
    model.eval()
    outputs = model.reconstruct({m: batch[m] for m in observed})
    decoded_images = outputs[image_key].cpu()
    decoded_labels = outputs[label_key].argmax(-1).cpu()
    n = len(images)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(1.3 * columns, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for i in range(n):
        top, bottom = (
            axes[2 * (i // columns), i % columns],
            axes[2 * (i // columns) + 1, i % columns],
        )
        _show(top, images[i] if image_key in observed else torch.ones_like(images[i]))
        top.set_title(f"in: {int(labels[i])}" if label_key in observed else "in: -", fontsize=8)
        _show(bottom, decoded_images[i])
        right = int(decoded_labels[i]) == int(labels[i])
        bottom.set_title(
            f"out: {int(decoded_labels[i])}", fontsize=8, color="green" if right else "red"
        )
    accuracy = (decoded_labels == labels).float().mean().item()
    fig.suptitle(f"{title} (decoded label correct: {accuracy:.0%} of these)", fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)


def _save(fig, out_path: Path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def plot_latent_projection(
    means: torch.Tensor, labels: torch.Tensor, out_path: Path, title: str
) -> Path:
    """The first two principal components of posterior means, coloured by digit."""
    centered = means - means.mean(0)
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    points = (centered @ v[:2].T).cpu()
    fig, ax = plt.subplots(figsize=(6, 5))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels.cpu(), cmap="tab10", s=4, alpha=0.7)
    fig.colorbar(scatter, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, out_path)


@torch.no_grad()
def plot_style_transfer(
    model: MultimodalVAE,
    batch: Batch,
    out_path: Path,
    image_key: str,
    class_key: str,
    columns: int = 8,
) -> Path:
    """A model with private codes (FMW-VAE; the paper's Fig. 16 with styles
    added): row d decodes the class d with the private (style) code of the
    image above each column (`model.transfer_style`)."""
    images = batch[image_key][:columns]
    origin = torch.zeros(1, model.prior_dim, device=images.device)
    num_classes = model.decode(origin, [class_key])[class_key].shape[-1]
    classes = torch.arange(num_classes, device=images.device)
    decoded = model.transfer_style(
        {class_key: classes.repeat_interleave(len(images))},
        {image_key: images.repeat(num_classes, *[1] * (images.dim() - 1))},
    )[image_key].cpu()
    fig, axes = plt.subplots(
        num_classes + 1,
        len(images),
        figsize=(1.2 * len(images), 1.2 * (num_classes + 1) + 1),
        squeeze=False,
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for j in range(len(images)):
        _show(axes[0, j], images[j].cpu())
        axes[0, j].set_title("style", fontsize=8)
        for d in range(num_classes):
            _show(axes[d + 1, j], decoded[d * len(images) + j])
            if j == 0:
                axes[d + 1, j].set_ylabel(f"{class_key} {d}", fontsize=8)
    fig.suptitle(
        f"{type(model).__name__}: {class_key} (rows) + style of the top image (columns)",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, out_path)


def _show(ax, image: torch.Tensor) -> None:
    """A (C, H, W) image in [0, 1]: grey for one channel, colour for three."""
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1))


@torch.no_grad()
def plot_caption_reconstructions(
    model: MultimodalVAE,
    images: torch.Tensor,
    captions: torch.Tensor,
    texts: list[str],
    out_path,
    names: tuple[str, str],
) -> Path:
    """The paper's Fig. 14 with the captions printed: for each example (row),
    the input image, then the image decoded when the encoder sees both
    modalities, only the image, and only the caption."""
    image_key, caption_key = names
    settings = {
        name: observed
        for name, observed in observation_settings(list(names)).items()
        if model.can_infer_from(observed)
    }
    batch = {image_key: images, caption_key: captions}
    decoded = {
        name: model.reconstruct({m: batch[m] for m in observed})[image_key].cpu()
        for name, observed in settings.items()
    }
    columns = {"input": images.cpu(), **decoded}
    fig, axes = plt.subplots(
        len(images),
        len(columns) + 1,
        figsize=(1.4 * len(columns) + 6, 1.4 * len(images)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1] * len(columns) + [4.5]},
    )
    for ax in axes.flat:
        ax.axis("off")
    for i in range(len(images)):
        for j, (name, pictures) in enumerate(columns.items()):
            axes[i, j].imshow(pictures[i].permute(1, 2, 0).clamp(0, 1))
            if i == 0:
                axes[i, j].set_title(name.replace("_", " "), fontsize=9)
        axes[i, -1].text(0, 0.5, texts[i], fontsize=8, va="center", wrap=True)
    fig.suptitle(f"{type(model).__name__}: images decoded from each observation setting")
    fig.tight_layout()
    return _save(fig, out_path)


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _reading(ax, read, m: str, image: torch.Tensor, truth: int | None) -> None:
    """Title a generated image with the class its classifier reads: green
    when it is the example's class, red when not, black without a truth."""
    if read is None or m not in read:
        return
    found = int(read[m](image.unsqueeze(0))[0])
    colour = "black" if truth is None else ("green" if found == truth else "red")
    ax.set_title(str(found), fontsize=7, color=colour, pad=2)


@torch.no_grad()
def plot_prior_samples(
    model: MultimodalVAE,
    modalities: list[str],
    out_path: Path,
    title: str,
    read: dict | None = None,
    rows: int = 8,
    seed: int = 0,
) -> Path:
    """MoPoE's unconditional generation: each row one z ~ N(0, I) decoded to
    every modality (one column each), titled with the class each modality's
    classifier reads (a coherent row reads one class throughout). The draws
    come from a generator of their own (`seed`)."""
    generator = torch.Generator(model.device).manual_seed(seed)
    z = torch.randn(rows, model.prior_dim, generator=generator, device=model.device)
    decoded = {m: model.likelihoods[m].mean(out) for m, out in model.decode(z, modalities).items()}
    width = max(4.5, 1.0 * len(modalities))
    fig, axes = plt.subplots(
        rows + 1,
        len(modalities),
        figsize=(width, 1.0 * rows + 1.2),
        squeeze=False,
        gridspec_kw={"height_ratios": [0.25] + [1] * rows},
    )
    for j, m in enumerate(modalities):
        axes[0, j].axis("off")
        axes[0, j].text(0.5, 0, m, ha="center", va="bottom", fontsize=9)
        for i in range(rows):
            ax = axes[i + 1, j]
            _blank(ax)
            _show(ax, decoded[m][i].cpu())
            _reading(ax, read, m, decoded[m][i], None)
    readings = "\n(digits: the classes the classifiers read)" if read else ""
    fig.suptitle(f"{title}\neach row: one z ~ N(0, I), every modality{readings}", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_path)


@torch.no_grad()
def plot_conditional_generation(
    model: MultimodalVAE,
    batch: Batch,
    modalities: list[str],
    out_path: Path,
    title: str,
    read: dict | None = None,
    classes: torch.Tensor | None = None,
    examples: int = 4,
) -> Path:
    """MoPoE's conditional generation for the first `examples` test tuples,
    one panel each (a column per modality): the tuple itself, then each
    modality decoded (posterior mean) from each single modality (row "from
    <m>"; its framed diagonal is the reconstruction), then each modality from
    all the others (row "from the others": the leave-one-out generation).
    Rows the model cannot infer from stay blank. Generated images are titled
    with the class their classifier reads, green when it is the example's."""
    examples = min(examples, len(batch[modalities[0]]))
    batch = {m: batch[m][:examples] for m in modalities}
    rows: dict[str, dict[str, torch.Tensor]] = {"input": batch}
    for source in modalities:
        can = model.can_infer_from([source])
        rows[f"from {source}"] = model.reconstruct({source: batch[source]}) if can else {}
    rows["from the others"] = {}
    for target in modalities:
        others = [m for m in modalities if m != target]
        if others and model.can_infer_from(others):
            observed = {m: batch[m] for m in others}
            rows["from the others"][target] = model.reconstruct(observed)[target]
    fig = plt.figure(figsize=(0.95 * len(modalities) * examples + 1.0, 1.0 * len(rows) + 1.0))
    panels = fig.subfigures(1, examples, wspace=0.04, squeeze=False)[0]
    for e, panel in enumerate(panels):
        truth = None if classes is None else int(classes[e])
        axes = panel.subplots(len(rows), len(modalities), squeeze=False)
        for r, (row, decoded) in enumerate(rows.items()):
            for j, m in enumerate(modalities):
                ax = axes[r, j]
                _blank(ax)
                if m in decoded:
                    _show(ax, decoded[m][e].cpu())
                    if r == 0:
                        ax.set_title(m, fontsize=8, pad=2)
                    else:
                        _reading(ax, read, m, decoded[m][e], truth)
                    if row == f"from {m}":  # the reconstruction of the observed modality
                        for spine in ax.spines.values():
                            spine.set(visible=True, color="tab:blue", linewidth=2)
                if j == 0 and e == 0:
                    ax.set_ylabel(row, fontsize=8)
        label = f"example {e + 1}" + ("" if truth is None else f", class {truth}")
        panel.suptitle(label, fontsize=9, y=0.9)
        panel.subplots_adjust(
            left=0.12 if e == 0 else 0.02,
            right=0.98,
            top=0.83,
            bottom=0.02,
            wspace=0.08,
            hspace=0.35,
        )
    fig.suptitle(
        f"{title}: row 'from <m>' decodes every modality from m alone (framed: m itself), "
        "'from the others' each modality from all the others\n(posterior means; digits: the "
        "classes the classifiers read, green when the example's)",
        fontsize=9,
        y=0.99,
    )
    return _save(fig, out_path)

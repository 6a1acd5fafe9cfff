"""Figures of a run: training curves (the paper's Figs. 8, 10, 12), the
reconstructions of every observation setting in one figure (Figs. 9, 11, 13),
the latent projection, style transfer, COCO's captions (Fig. 14) and, for
data of several image modalities (PolyMNIST), MoPoE's grids of prior samples
and of conditional generation.

Every figure draws under `STYLE`; a reading that is right or wrong is told
apart by colour-blind-safe colours and by a check or a cross."""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mwvae.models.base import Batch, MultimodalVAE  # noqa: E402

log = logging.getLogger(__name__)

# Text that stays readable in print (matplotlib's defaults came out at 8 pt here).
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 11,
    "figure.titlesize": 14,
}
# Okabe & Ito's colour-blind-safe blue and vermillion, each with a mark of its
# own for grey print: (colour, mark).
RIGHT = ("#0072B2", "\u2713")
WRONG = ("#D55E00", "\u2717")
KEY = f"{RIGHT[1]} blue: the example's class    {WRONG[1]} vermillion: another class"
TRAIN = {"color": "#0072B2", "marker": "o", "label": "training (mean of the epoch's logged steps)"}
VALIDATION = {"color": "#E69F00", "marker": "s", "linestyle": "--", "label": "validation"}


def styled(plot: Callable) -> Callable:
    """Draw under `STYLE`, leaving matplotlib's global settings alone."""

    @functools.wraps(plot)
    def draw(*args, **kwargs):
        with plt.rc_context(STYLE):
            return plot(*args, **kwargs)

    return draw


def draw_safely(name: str, draw: Callable[[], Path]) -> Path | None:
    """`draw()`, or None and a one-line warning when it fails: a figure that
    cannot be drawn (an odd model, latent or dataset) costs no other figure."""
    try:
        return draw()
    except Exception as error:
        log.warning("Figure %s skipped: %s: %s", name, type(error).__name__, error)
        plt.close("all")  # whatever the failed figure left open
        return None


def judged(right: bool) -> tuple[str, str]:
    """The colour and the mark of a reading that is right or wrong."""
    return RIGHT if right else WRONG


def _save(fig, out_path: Path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _frame(ax, colour: str, width: float = 2.5) -> None:
    for spine in ax.spines.values():
        spine.set(visible=True, color=colour, linewidth=width)


def _show(ax, image: torch.Tensor) -> None:
    """A (C, H, W) image in [0, 1]: grey for one channel, colour for three."""
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1))


# ------------------------------------------------------------------ training curves
def read_history(path: Path) -> list[dict[str, float]]:
    with Path(path).open() as file:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(file)]


def epoch_means(rows: list[dict[str, float]], key: str) -> tuple[list[int], list[float]]:
    """`key`'s mean over the rows of each epoch, the epochs counted from 1 (how
    many had been trained): a point per epoch however few steps it logged."""
    by_epoch: dict[int, list[float]] = {}
    for row in rows:
        if key in row:
            by_epoch.setdefault(int(row["epoch"]) + 1, []).append(row[key])
    epochs = sorted(by_epoch)
    return epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]


def curve_grid(terms: list[str]) -> list[list[str | None]]:
    """The panels, laid out as the paper's Figs. 8, 10 and 12: the
    reconstruction loss of each modality and the ELBO, the latent loss (KL)
    of each modality (or of the model's joint posterior) and W2, then the
    rest (the objective, coherences, a model's own terms). None: no panel."""
    first = [t for t in terms if t.startswith("recon/")] + ["elbo"]
    second = [t for t in terms if t.startswith("kl/")] + ["w2"]
    rest = [t for t in terms if t not in first + second]
    width = max(len(first), len(second))
    rows = [first, second] + [rest[i : i + width] for i in range(0, len(rest), width)]
    return [[t if t in terms else None for t in row] + [None] * (width - len(row)) for row in rows]


def term_title(term: str) -> str:
    group, _, name = term.partition("/")
    arrow = name.replace("_to_", " \u2192 ")
    titles = {
        "recon": f"Reconstruction loss, {name}",
        "kl": f"Latent loss (KL), {name}",
        "coherence": f"Coherence, {arrow}",
        "elbo": "Negative ELBO",
        "w2": "$W_2^2$ between the posteriors",
        "loss": "Training objective",
    }
    return titles.get(group, term.replace("/", ": ").replace("_", " "))


def term_unit(term: str) -> str:
    """The y axis's unit (none for the objective, whose weighted terms mix units)."""
    units = {
        "recon": "nats",
        "kl": "nats",
        "elbo": "nats",
        "w2": "squared latent distance",
        "coherence": "accuracy",
    }
    return units.get(term.split("/", 1)[0], "")


def _plot_term(ax, rows: list[dict[str, float]], term: str) -> list[dict]:
    """One term's panel; returns the styles of the series it has."""
    values, epochs, drawn = [], [0], []
    for prefix, style in (("train", TRAIN), ("val", VALIDATION)):
        at, means = epoch_means(rows, f"{prefix}/{term}")
        if means:
            ax.plot(at, means, markersize=4, linewidth=1.5, **style)
            values, epochs, drawn = values + means, epochs + at, [*drawn, style]
    ax.set_title(term_title(term))
    ax.set_xlabel("epoch")
    ax.set_ylabel(term_unit(term))
    ax.set_xlim(0.5, max(epochs) + 0.5)  # whole epochs, even for one
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    # Losses that fall by orders of magnitude read better on a log scale.
    if values and min(values) > 0 and max(values) > 30 * min(values):
        ax.set_yscale("log")
    if term.startswith("coherence/"):
        ax.set_ylim(0, 1)  # a share: chance and perfect both in view
    return drawn


@styled
def plot_training_curves(history_path: Path, out_path: Path, title: str) -> Path:
    """Every logged term against the epoch, in `curve_grid`'s panels: the
    training values averaged over each epoch's logged steps, and validation
    at each epoch's end, so that a run that logs few steps an epoch still has
    its curves."""
    rows = read_history(history_path)
    names = dict.fromkeys(key.split("/", 1)[1] for row in rows for key in row if "/" in key)
    grid = curve_grid([t for t in names if t != "beta"])  # beta: the KL weight's schedule
    fig, axes = plt.subplots(
        len(grid),
        len(grid[0]),
        figsize=(3.9 * len(grid[0]), 3.0 * len(grid) + 0.8),
        squeeze=False,
        layout="constrained",
    )
    drawn = []
    for row, cells in zip(axes, grid, strict=True):
        for ax, term in zip(row, cells, strict=True):
            if term is None:
                ax.axis("off")
            else:
                drawn += _plot_term(ax, rows, term)
    fig.suptitle(title)
    shown = [style for style in (TRAIN, VALIDATION) if style in drawn]
    handles = [Line2D([], [], markersize=5, **style) for style in shown]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    return _save(fig, out_path)


# ------------------------------------------------------------------ reconstructions
def observation_settings(modalities: list[str]) -> dict[str, list[str]]:
    """`both`/`all` and `<m>_only` for each modality: what the encoder sees."""
    settings = {f"{m}_only": [m] for m in modalities}
    if len(modalities) > 1:
        settings = {"both" if len(modalities) == 2 else "all": list(modalities), **settings}
    return settings


def _show_label(ax, value: int, colour: str = "black", mark: str = "") -> None:
    """A label as its digit in a grey box: what the label's encoder sees or
    its decoder says."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#f0f0f0")
    for spine in ax.spines.values():
        spine.set_color("#c8c8c8")
    ax.text(0.5, 0.5, f"{value}{mark}", ha="center", va="center", fontsize=20, color=colour)


def _mark_reading(ax, found: int, truth: int) -> None:
    """Frame a generated image in the colour of the class read in it, and
    print that class in its corner."""
    colour, mark = judged(found == truth)
    _frame(ax, colour)
    ax.text(
        0.97,
        0.04,
        f"{found}{mark}",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=11,
        fontweight="bold",
        color=colour,
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0},
    )


@torch.no_grad()
def _reconstruction_panel(
    panel,
    model: MultimodalVAE,
    batch: Batch,
    observed: list[str],
    keys: tuple[str, str],
    classes: torch.Tensor,
    read: dict | None,
) -> None:
    """One observation setting: a row per example, the observed inputs, then
    the decoded image (marked with the class its classifier reads) and the
    decoded label, each judged against the example's class."""
    image_key, label_key = keys
    out = model.reconstruct({m: batch[m] for m in observed})
    images, labels = out[image_key].cpu(), out[label_key].argmax(-1).cpu()
    readings = read[image_key](out[image_key]).cpu() if read and image_key in read else None
    inputs = [m for m in keys if m in observed]
    columns = [f"{m} in" for m in inputs] + [f"{image_key} out", f"{label_key} out"]
    axes = panel.subplots(len(classes), len(columns), squeeze=False)
    for i, row in enumerate(axes):
        for ax, m in zip(row, inputs, strict=False):
            if m == image_key:
                _blank(ax)
                _show(ax, batch[m][i].cpu())
            else:
                _show_label(ax, int(batch[m][i]))
        _blank(row[-2])
        _show(row[-2], images[i])
        if readings is not None:
            _mark_reading(row[-2], int(readings[i]), int(classes[i]))
        _show_label(row[-1], int(labels[i]), *judged(int(labels[i]) == int(classes[i])))
    for ax, column in zip(axes[0], columns, strict=True):
        ax.set_title(column, fontsize=11)
    summary = [f"label right: {int((labels == classes).sum())}/{len(classes)}"]
    if readings is not None:
        summary.insert(0, f"image read right: {int((readings == classes).sum())}/{len(classes)}")
    panel.suptitle(f"observed: {' + '.join(observed)}", fontsize=13)
    panel.supxlabel("\n".join(summary), fontsize=11)


@styled
@torch.no_grad()
def plot_reconstructions(
    model: MultimodalVAE,
    batch: Batch,
    settings: dict[str, list[str]],
    out_path: Path,
    title: str,
    keys: tuple[str, str],
    classes: torch.Tensor | None = None,
    read: dict | None = None,
) -> Path:
    """The paper's Figs. 9, 11 and 13 in one figure: a panel per observation
    setting (`settings`: name -> observed modalities), side by side, a row
    per example of `batch`. `keys`: the image and the label modality;
    `classes`: each example's class (default: its label); `read`: what reads
    the class of a decoded image (`mwvae.evaluation.coherence.readers`)."""
    model.eval()
    classes = (batch[keys[1]] if classes is None else classes).cpu()
    widths = [len([m for m in keys if m in observed]) + 2 for observed in settings.values()]
    fig = plt.figure(
        figsize=(0.95 * sum(widths) + 0.6 * len(widths), 0.95 * len(classes) + 2.6),
        layout="constrained",
    )
    panels = fig.subfigures(1, len(settings), width_ratios=widths, wspace=0.05, squeeze=False)[0]
    for panel, observed in zip(panels, settings.values(), strict=True):
        _reconstruction_panel(panel, model, batch, observed, keys, classes, read)
    fig.suptitle(title)
    fig.supxlabel(f"{KEY}\n(framed: the class the {keys[0]} classifier reads)", fontsize=11)
    return _save(fig, out_path)


# ------------------------------------------------------------------ latent projection
def _class_colours(classes: torch.Tensor) -> dict:
    """Scatter options that colour points by class, one colour each."""
    count = int(classes.max()) + 1
    cmap = plt.get_cmap("tab10" if count <= 10 else "viridis", count)
    return {"c": classes, "cmap": cmap, "vmin": -0.5, "vmax": count - 0.5}


def _principal_components(ax, means: torch.Tensor, classes: torch.Tensor):
    centered = means - means.mean(0)
    _, singular, v = torch.linalg.svd(centered, full_matrices=False)
    points = centered @ v[:2].T
    shares = singular.square() / singular.square().sum()
    ax.set_xlabel(f"principal component 1 ({shares[0]:.0%} of the variance)")
    ax.set_ylabel(f"principal component 2 ({shares[1]:.0%})")
    return ax.scatter(points[:, 0], points[:, 1], s=5, alpha=0.7, **_class_colours(classes))


def _strips_by_class(ax, values: torch.Tensor, classes: torch.Tensor) -> None:
    """A 1-d latent: each posterior mean at its value, in its class's strip
    (jittered across it, so that the points do not hide each other)."""
    jitter = 0.6 * torch.rand(len(values), generator=torch.Generator().manual_seed(0)) - 0.3
    ax.set_yticks(range(int(classes.max()) + 1))
    ax.set_xlabel("posterior mean (the latent's one dimension)")
    ax.set_ylabel("class")
    ax.scatter(values, classes + jitter, s=5, alpha=0.7, **_class_colours(classes))


@styled
def plot_latent_projection(
    means: torch.Tensor, classes: torch.Tensor, out_path: Path, title: str
) -> Path:
    """Posterior means coloured by class: their first two principal
    components, or a 1-d latent's values in a strip per class."""
    means, classes = means.cpu(), classes.cpu()
    fig, ax = plt.subplots(figsize=(6.5, 5.2), layout="constrained")
    if means.shape[1] == 1:
        _strips_by_class(ax, means[:, 0], classes)  # the class is the y axis: no colour bar
    else:
        points = _principal_components(ax, means, classes)
        fig.colorbar(points, ax=ax, ticks=range(int(classes.max()) + 1), label="class")
    ax.set_title(title)
    return _save(fig, out_path)


# ------------------------------------------------------------------ style transfer, captions
@styled
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
        figsize=(1.1 * len(images) + 1.2, 1.1 * (num_classes + 1) + 1),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        _blank(ax)
    for j in range(len(images)):
        _show(axes[0, j], images[j].cpu())
        _frame(axes[0, j], "black", width=1.5)  # the style sources, apart from what they give
        for d in range(num_classes):
            _show(axes[d + 1, j], decoded[d * len(images) + j])
    axes[0, 0].set_ylabel("style of", fontsize=11)
    for d in range(num_classes):
        axes[d + 1, 0].set_ylabel(f"{class_key} {d}", fontsize=11)
    fig.suptitle(f"{model.display_name}: each {class_key} (rows) in the style of the top image")
    return _save(fig, out_path)


@styled
@torch.no_grad()
def plot_caption_reconstructions(
    model: MultimodalVAE,
    images: torch.Tensor,
    captions: torch.Tensor,
    texts: list[str],
    out_path,
    names: tuple[str, str],
    caption_text: Callable[[torch.Tensor], list[str]] | None = None,
) -> Path:
    """The paper's Fig. 14 with the captions printed: for each example (row),
    the input image, then the image decoded when the encoder sees both
    modalities, only the image, and only the caption. With `caption_text`
    (captions as tokens: ids -> text), each row also prints the caption
    generated in each setting under the given one."""
    image_key, caption_key = names
    settings = {
        name: observed
        for name, observed in observation_settings(list(names)).items()
        if model.can_infer_from(observed)
    }
    batch = {image_key: images, caption_key: captions}
    reconstructed = {
        name: model.reconstruct({m: batch[m] for m in observed})
        for name, observed in settings.items()
    }
    decoded = {name: out[image_key].cpu() for name, out in reconstructed.items()}
    lines = [[text] for text in texts]
    if caption_text is not None:
        for name, out in reconstructed.items():
            for row, generated in zip(lines, caption_text(out[caption_key]), strict=True):
                row.append(f"{name.replace('_', ' ')}: {generated}")
    columns = {"input": images.cpu(), **decoded}
    fig, axes = plt.subplots(
        len(images),
        len(columns) + 1,
        figsize=(1.4 * len(columns) + 7, 1.4 * len(images) + 0.8),
        squeeze=False,
        gridspec_kw={"width_ratios": [1] * len(columns) + [5]},
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    for i in range(len(images)):
        for j, (name, pictures) in enumerate(columns.items()):
            axes[i, j].imshow(pictures[i].permute(1, 2, 0).clamp(0, 1))
            if i == 0:
                axes[i, j].set_title(name.replace("_", " "), fontsize=11)
        axes[i, -1].text(0, 0.5, "\n".join(lines[i]), fontsize=10, va="center", wrap=True)
    fig.suptitle(f"{model.display_name}: images decoded from each observation setting")
    return _save(fig, out_path)


# ------------------------------------------------------------------ several image modalities
def _reading(ax, read, m: str, image: torch.Tensor, truth: int | None) -> None:
    """Title a generated image with the class its classifier reads, judged
    against the example's class when there is one."""
    if read is None or m not in read:
        return
    found = int(read[m](image.unsqueeze(0))[0])
    colour, mark = ("black", "") if truth is None else judged(found == truth)
    ax.set_title(f"{found}{mark}", fontsize=10, color=colour, pad=2)


@styled
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
    width = max(5.5, 1.1 * len(modalities))
    fig, axes = plt.subplots(
        rows + 1,
        len(modalities),
        figsize=(width, 1.1 * rows + 1.6),
        squeeze=False,
        gridspec_kw={"height_ratios": [0.25] + [1] * rows},
    )
    for j, m in enumerate(modalities):
        axes[0, j].axis("off")
        axes[0, j].text(0.5, 0, m, ha="center", va="bottom", fontsize=11)
        for i in range(rows):
            ax = axes[i + 1, j]
            _blank(ax)
            _show(ax, decoded[m][i].cpu())
            _reading(ax, read, m, decoded[m][i], None)
    readings = "\n(digits: the classes the classifiers read)" if read else ""
    fig.suptitle(f"{title}\neach row: one z ~ N(0, I), every modality{readings}", fontsize=12)
    fig.tight_layout()
    return _save(fig, out_path)


@styled
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
    with the class their classifier reads, judged against the example's."""
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
    fig = plt.figure(figsize=(1.05 * len(modalities) * examples + 1.4, 1.1 * len(rows) + 1.6))
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
                        ax.set_title(m, fontsize=10, pad=2)
                    else:
                        _reading(ax, read, m, decoded[m][e], truth)
                    if row == f"from {m}":  # the reconstruction of the observed modality
                        _frame(ax, "black", width=2)
                if j == 0 and e == 0:
                    ax.set_ylabel(row, fontsize=10)
        label = f"example {e + 1}" + ("" if truth is None else f", class {truth}")
        panel.suptitle(label, fontsize=11, y=0.9)
        panel.subplots_adjust(
            left=0.16 if e == 0 else 0.02,
            right=0.98,
            top=0.82,
            bottom=0.02,
            wspace=0.08,
            hspace=0.4,
        )
    fig.suptitle(
        f"{title}: row 'from <m>' decodes every modality from m alone (framed: m itself), "
        "'from the others' each modality from all the others\n(posterior means; digits: the "
        f"classes the classifiers read; {KEY})",
        fontsize=12,
        y=0.99,
    )
    return _save(fig, out_path)

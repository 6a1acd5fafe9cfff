"""The evaluation's figures, each rendered for a tiny model: the file is a
real picture (its size, many colours), with the titles, labels and marks a
reader needs; a figure that fails is logged and skipped; a 1-d latent is
drawn too."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from matplotlib.text import Text

from mwvae.callbacks import MetricHistory
from mwvae.evaluation import figures, suite
from mwvae.evaluation.figures import (
    RIGHT,
    VALIDATION,
    WRONG,
    curve_grid,
    epoch_means,
    plot_caption_reconstructions,
    plot_latent_projection,
    plot_reconstructions,
    plot_style_transfer,
    plot_training_curves,
    read_history,
)
from mwvae.evaluation.suite import draw_planned, figure_plan
from mwvae.models import FMWVAE, MWVAE

from ..models.tiny import IMAGE, TOKENS, make_captions, make_model

SETTINGS = {"both": ["image", "label"], "image_only": ["image"], "label_only": ["label"]}
# Reads every image as class 0: right for the examples of class 0, wrong for the others.
READ = {"image": lambda images: torch.zeros(len(images), dtype=torch.long)}


@pytest.fixture
def texts(monkeypatch) -> dict[str, list[str]]:
    """The texts of each figure drawn (by file name), taken just before it is saved."""
    found: dict[str, list[str]] = {}
    save = figures._save

    def keep(fig, out_path):
        found[Path(out_path).name] = [t.get_text() for t in fig.findobj(Text) if t.get_text()]
        return save(fig, out_path)

    monkeypatch.setattr(figures, "_save", keep)
    return found


def pixels(path: Path) -> np.ndarray:
    return matplotlib.image.imread(path)[..., :3]


def colour_count(path: Path) -> int:
    return len(np.unique(pixels(path).reshape(-1, 3), axis=0))


def shows(path: Path, colour: str) -> bool:
    """Whether some pixel has this colour (#rrggbb), up to rounding."""
    target = np.array(matplotlib.colors.to_rgb(colour))
    return bool((np.abs(pixels(path) - target).max(-1) < 0.02).any())


def a_batch() -> dict[str, torch.Tensor]:
    """One example of each of the tiny data's three classes."""
    image = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)).round()
    return {"image": image, "label": torch.arange(3)}


def test_the_observation_settings_side_by_side_in_one_figure(tmp_path, texts):
    model = make_model(MWVAE)
    path = plot_reconstructions(
        model, a_batch(), SETTINGS, tmp_path / "r.png", "MW-VAE: title", ("image", "label"),
        read=READ,
    )  # fmt: skip
    height, width = pixels(path).shape[:2]
    assert width > 1.5 * height  # three panels side by side, three rows each
    assert colour_count(path) > 50
    assert shows(path, RIGHT[0]) and shows(path, WRONG[0])  # read as 0: right once, wrong twice
    found = texts["r.png"]
    assert "MW-VAE: title" in found
    for title in ("observed: image + label", "observed: image", "observed: label"):
        assert title in found
    # The label-only panel shows the label as its digit: the inputs are 0, 1, 2.
    assert found.count("label in") == 2 and {"0", "1", "2"} <= set(found)
    assert "0\u2713" in found and "0\u2717" in found  # the readings (all 0), judged
    assert "image read right: 1/3" in "\n".join(found)


def test_training_curves_have_a_point_per_epoch_when_few_steps_are_logged(tmp_path, texts):
    # 40 steps an epoch, training logged every 50 steps: epochs 1 and 2 have
    # one training row each, epoch 3 none; every epoch is validated.
    history = MetricHistory(str(tmp_path / "history.csv"))
    for epoch in range(3):
        for step in range(40 * epoch + 1, 40 * epoch + 41):
            if step % 50 == 0:
                terms = {"train/loss": 9.0 - step / 50, "train/recon/image": 5.0, "train/beta": 1}
                history.rows.append({"epoch": epoch, "step": step, **terms})
        terms = {"val/loss": 9.0 - epoch, "val/elbo": 8.0 - epoch, "val/recon/image": 5.0}
        terms |= {"val/recon/label": 1.0, "val/kl/image": 3.0, "val/kl/label": 0.5}
        terms |= {"val/w2": 2.0 / (epoch + 1), "val/coherence/image_to_label": 0.3 * epoch}
        history.rows.append({"epoch": epoch, "step": 40 * epoch + 40, **terms})
    history.write()
    rows = read_history(tmp_path / "history.csv")
    assert epoch_means(rows, "train/loss") == ([2, 3], [8.0, 7.0])
    assert epoch_means(rows, "val/loss") == ([1, 2, 3], [9.0, 8.0, 7.0])

    path = plot_training_curves(tmp_path / "history.csv", tmp_path / "c.png", "MW-VAE: curves")
    assert colour_count(path) > 50 and shows(path, VALIDATION["color"])
    found = texts["c.png"]
    assert "MW-VAE: curves" in found and "epoch" in found and "nats" in found
    for title in (
        "Reconstruction loss, image",
        "Latent loss (KL), label",
        "Negative ELBO",
        "Coherence, image \u2192 label",
    ):
        assert title in found
    assert not any("/" in text or "beta" in text for text in found)  # no raw key


def test_the_curves_are_laid_out_as_the_papers_figures():
    terms = ["loss", "recon/image", "recon/label", "kl/image", "kl/label", "elbo", "w2"]
    assert curve_grid([*terms, "coherence/image_to_label"]) == [
        ["recon/image", "recon/label", "elbo"],
        ["kl/image", "kl/label", "w2"],
        ["loss", "coherence/image_to_label", None],
    ]
    # A joint posterior's one KL term, and no W2 (mVAE-PoE): blank cells.
    assert curve_grid(["recon/image", "recon/label", "kl/joint", "elbo"]) == [
        ["recon/image", "recon/label", "elbo"],
        ["kl/joint", None, None],
    ]


@pytest.mark.parametrize("dim", [1, 6])
def test_the_latent_projection_of_any_latent_size(tmp_path, texts, dim):
    classes = torch.arange(60) % 3
    means = torch.randn(60, dim) + classes[:, None]
    path = plot_latent_projection(means, classes, tmp_path / "p.png", "MW-VAE: latents")
    assert colour_count(path) > 50
    found = texts["p.png"]
    assert "MW-VAE: latents" in found and "class" in found
    if dim == 1:  # a strip per class, the value along it
        assert "posterior mean (the latent's one dimension)" in found
    else:
        assert any(text.startswith("principal component 2") for text in found)


def test_style_transfer_is_titled_with_the_display_name(tmp_path, texts):
    model = make_model(FMWVAE).eval()
    path = plot_style_transfer(model, a_batch(), tmp_path / "s.png", "image", "label", columns=3)
    assert colour_count(path) > 20
    assert any(text.startswith("FMW-VAE: ") for text in texts["s.png"])


def colour_image() -> dict:
    colour = {**IMAGE, "likelihood": "laplace"}
    for part in ("encoder", "decoder"):
        shape_key = "input_shape" if part == "encoder" else "output_shape"
        colour[part] = {**IMAGE[part], shape_key: [3, 4, 4]}
    return colour


def test_caption_reconstructions_print_the_captions(tmp_path, texts):
    colour = colour_image()
    caption = {
        "encoder": {"_target_": "mwvae.nets.MLPEncoder", "input_shape": [5], "hidden_dims": [8]},
        "decoder": {"_target_": "mwvae.nets.MLPDecoder", "hidden_dims": [8], "output_shape": [5]},
        "likelihood": "gaussian",
    }
    model = make_model(MWVAE, modalities={"image": colour, "caption": caption}).eval()
    images, captions = torch.rand(2, 3, 4, 4), torch.randn(2, 5)
    names = ("image", "caption")
    texts_in = ["a red square", "two blue circles"]
    path = plot_caption_reconstructions(
        model, images, captions, texts_in, tmp_path / "k.png", names
    )
    assert colour_count(path) > 20
    found = texts["k.png"]
    assert set(texts_in) <= set(found) and "caption only" in found
    assert any(text.startswith("MW-VAE: ") for text in found)


def test_caption_reconstructions_print_the_captions_a_token_model_writes(tmp_path, texts):
    model = make_model(MWVAE, modalities={"image": colour_image(), "caption": TOKENS}).eval()
    images = torch.rand(2, 3, 4, 4)
    captions = make_captions(2, torch.Generator().manual_seed(0))
    written = []

    def caption_text(ids):  # what a vocabulary would say; remembers what it was asked
        written.append(ids)
        return [f"caption {'-'.join(map(str, row.tolist()))}" for row in ids]

    path = plot_caption_reconstructions(
        model,
        images,
        captions,
        ["a red square", "two blue circles"],
        tmp_path / "t.png",
        ("image", "caption"),
        caption_text,
    )
    assert colour_count(path) > 20
    found = "\n".join(texts["t.png"])
    assert len(written) == 3  # both, image only, caption only
    for ids in written:
        for row in ids:
            assert f"caption {'-'.join(map(str, row.tolist()))}" in found
    assert "image only: caption" in found and "a red square" in found


def tiny_test_split(n: int = 30) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    image = torch.rand(n, 1, 4, 4, generator=generator).round()
    return {"image": image, "label": torch.arange(n) % 3}


def test_every_figure_of_a_labelled_image_model(tmp_path):
    model = make_model(FMWVAE).eval()
    test = tiny_test_split()
    paths = draw_planned(figure_plan(model, test, test["label"], tmp_path, read=READ))
    assert sorted(p.name for p in paths) == [
        "latent_projection.png",
        "reconstructions.png",
        "style_transfer.png",
    ]
    assert all(colour_count(p) > 20 for p in paths)


def test_a_figure_that_fails_is_logged_and_skipped(tmp_path, monkeypatch, caplog):
    def fails(*args, **kwargs):
        raise IndexError("index 1 is out of bounds")

    monkeypatch.setattr(suite, "plot_latent_projection", fails)
    test = tiny_test_split()
    with caplog.at_level(logging.WARNING, logger="mwvae.evaluation.figures"):
        paths = draw_planned(figure_plan(make_model(MWVAE), test, test["label"], tmp_path))
    assert [p.name for p in paths] == ["reconstructions.png"]  # the other figure is drawn
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning == "Figure latent_projection skipped: IndexError: index 1 is out of bounds"
    assert not (tmp_path / "latent_projection.png").exists()

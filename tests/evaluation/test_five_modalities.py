"""The evaluation on five image modalities that share only their class (a
tiny PolyMNIST, `five.py`): coherence by the number of observed modalities,
Frechet distances in the classifiers' features, probes per modality, the
likelihoods of 31 subsets from one set of draws, and MoPoE's figures."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mwvae.evaluation.classifier import load_classifiers
from mwvae.evaluation.coherence import coherence_by_observed, readers
from mwvae.evaluation.frechet import features_distance, frechet_metrics
from mwvae.evaluation.likelihood import (
    draws_needed,
    estimate_log_likelihoods,
    likelihood_metrics,
    subset_name,
)
from mwvae.evaluation.suite import (
    draw_evaluation_figures,
    draw_planned,
    evaluate,
    figure_plan,
    image_like,
)
from mwvae.models import FMWVAE, JMVAE, MWVAE, MoPoE

from ..models.tiny import MODALITIES3
from ..models.tiny import make_model as make_tiny
from .five import NAMES, FiveImages, make_model, tuples

SMALL = {"likelihood": {"k": 70, "num_samples": 10}, "joint_samples": 300, "fd_samples": 120}


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory):
    # The five classifiers train once for the module (a few seconds), cached there.
    return FiveImages(tmp_path_factory.mktemp("five"))


@pytest.fixture(scope="module")
def mopoe_metrics(datamodule, tmp_path_factory):
    output, model = tmp_path_factory.mktemp("mopoe"), make_model(MoPoE)
    metrics = evaluate(model, datamodule, SMALL)
    draw_evaluation_figures(model, datamodule, SMALL, output)
    return metrics, output


def pair_means(metrics, names, size):
    """The mean of `coherence/<S>_to_<t>` over every |S| = size and t outside S."""
    values = [
        metrics[f"test/coherence/{subset_name(s, names)}_to_{t}"]
        for s in itertools.combinations(names, size)
        for t in names
        if t not in s
    ]
    return sum(values) / len(values), len(values)


def test_every_metric_of_five_image_modalities(mopoe_metrics):
    metrics, output = mopoe_metrics
    assert all(math.isfinite(v) for v in metrics.values())
    pairs = [k for k in metrics if k.startswith("test/coherence/") and "_to_" in k]
    assert len(pairs) == 5 * 4 + 10 * 3 + 10 * 2 + 5 * 1  # every (S, t outside S)
    for size, count in zip(range(1, 5), (20, 30, 20, 5), strict=True):
        mean, n = pair_means(metrics, list(NAMES), size)
        assert n == count
        assert metrics[f"test/coherence/observed_{size}"] == pytest.approx(mean, abs=1e-12)
    leave_one_out = [
        metrics[f"test/coherence/{'+'.join(o for o in NAMES if o != t)}_to_{t}"] for t in NAMES
    ]
    assert metrics["test/coherence/leave_one_out"] == pytest.approx(sum(leave_one_out) / 5)
    assert metrics["test/coherence/leave_one_out"] == metrics["test/coherence/observed_4"]
    assert "test/coherence/observed_5" not in metrics
    assert 0 <= metrics["test/coherence/joint"] <= 1
    for m in NAMES:
        rest = "+".join(o for o in NAMES if o != m)
        assert metrics[f"test/evaluator_accuracy/{m}"] > 0.9
        assert metrics[f"test/fd_classifier/{m}"] > 0
        assert metrics[f"test/fd_classifier/{rest}_to_{m}"] > 0
        assert 0 <= metrics[f"test/probe/{m}"] <= 1
        assert f"test/recon_mse/all/{m}" in metrics and f"test/recon_mse/m0_only/{m}" in metrics
        assert f"test/loglik/{m}" in metrics and f"test/loglik/{m}_given_{rest}" in metrics
    assert len([k for k in metrics if k.startswith("test/loglik/")]) == 31 + 5
    for name in ("prior_samples", "conditional_generation", "latent_projection"):
        assert (output / "figures" / f"{name}.png").exists(), name
    assert not list((output / "figures").glob("reconstructions_*"))  # no label to print


def test_a_model_without_posteriors_of_strict_subsets_gets_the_sizes_it_has(datamodule):
    # JMVAE infers from one modality or from all: no subset of 2-4.
    metrics = evaluate(make_model(JMVAE), datamodule, SMALL)
    mean, _ = pair_means(metrics, list(NAMES), 1)
    assert metrics["test/coherence/observed_1"] == pytest.approx(mean, abs=1e-12)
    assert not any(
        f"test/coherence/{k}" in metrics for k in ("observed_2", "observed_4", "leave_one_out")
    )
    assert not any(k.startswith("test/fd_classifier/m1+") for k in metrics)  # no conditional FD


def test_the_same_seed_gives_the_same_numbers(datamodule, mopoe_metrics):
    again = evaluate(make_model(MoPoE), datamodule, SMALL)
    assert again == mopoe_metrics[0]


def test_real_data_is_closer_to_real_data_than_an_untrained_generator(datamodule, tmp_path):
    datamodule.setup()
    test = {m: datamodule.splits["test"][m] for m in NAMES}
    classifiers = load_classifiers(datamodule, NAMES)
    model = make_model(MWVAE)
    metrics = frechet_metrics(model, test, classifiers, n=120, batch_size=50)
    # Real images against real images of another draw of the same data: near 0.
    real_again = {m: tuples(120, seed=7)[m] for m in NAMES}
    for m in NAMES:
        features = classifiers[m].embed(test[m])
        same = features_distance(features, features)
        other = features_distance(features, classifiers[m].embed(real_again[m]))
        # Zero up to rounding, which grows with the features' spread.
        assert abs(same) < 1e-6 * features.double().var(0).sum().item()
        assert other < metrics[f"fd_classifier/{m}"]  # an untrained decoder is far off


def test_coherence_by_observed_from_given_pairs():
    model = make_tiny(MWVAE, modalities=MODALITIES3).eval()
    names = ["image", "label", "image2"]
    read = readers(model, {"image": None, "image2": None})
    pairs = {
        "coherence/image_to_label": 0.9,
        "coherence/image_to_image2": 0.5,
        "coherence/label_to_image": 0.7,
        "coherence/label_to_image2": 0.6,
        "coherence/image2_to_image": 0.4,
        "coherence/image2_to_label": 0.8,
        "coherence/image+label_to_image2": 0.3,
        "coherence/image+image2_to_label": 1.0,
        "coherence/label+image2_to_image": 0.2,
    }
    found = coherence_by_observed(model, names, read, pairs)
    assert found == pytest.approx(
        {
            "coherence/observed_1": (0.9 + 0.5 + 0.7 + 0.6 + 0.4 + 0.8) / 6,
            "coherence/observed_2": 0.5,
            "coherence/leave_one_out": 0.5,
        }
    )


def test_styles_average_with_the_headline_value_of_targets_without_private_codes():
    model = make_tiny(FMWVAE, style="class_mean").eval()
    read = readers(model, {"image": None})
    pairs = {
        "coherence/image_to_label": 0.9,
        "coherence/label_to_image": 0.5,
        "coherence_class_mean/label_to_image": 0.7,
    }
    found = coherence_by_observed(model, ["image", "label"], read, pairs)
    assert found["coherence/observed_1"] == pytest.approx(0.7)
    assert found["coherence_class_mean/observed_1"] == pytest.approx(0.8)
    assert found["coherence_class_mean/leave_one_out"] == pytest.approx(0.8)


def test_image_like_means_decoded_as_pixels():
    assert image_like(make_model(MoPoE)) == list(NAMES)  # Laplace
    assert image_like(make_tiny(MWVAE, modalities=MODALITIES3)) == ["image", "image2"]  # Bernoulli


def count_decodes(model):
    calls = dict.fromkeys(model.decoders, 0)
    for m, decoder in model.decoders.items():
        decoder.register_forward_hook(lambda *_, m=m: calls.__setitem__(m, calls[m] + 1))
    return calls


def test_likelihoods_of_31_subsets_decode_each_modality_once_per_draw():
    model = make_model(MoPoE)
    batch = {m: t for m, t in tuples(6, seed=3).items() if m in NAMES}
    assert len(model.proposal_components(batch)) == 31  # with the wider copies and the prior: 63
    calls = count_decodes(model)
    found = estimate_log_likelihoods(model, batch, k=100, k_chunk=25)
    assert len(found) == 31
    assert calls == dict.fromkeys(NAMES, 4)  # K / k_chunk passes, whatever the number of subsets
    # Common draws and a Laplace density below 1 (scale 0.75): more modalities, lower estimate.
    for subset, estimate in found.items():
        for smaller, other in found.items():
            if set(smaller) < set(subset):
                assert (estimate.log_p <= other.log_p + 1e-4).all(), (subset, smaller)
    # 62 components beside the prior's 10%: K = 69 at least, as the config check says.
    assert draws_needed(5) == 69
    with pytest.raises(ValueError, match="too small"):
        estimate_log_likelihoods(model, batch, k=68)
    metrics = likelihood_metrics(model, batch, k=69, batch_size=3)
    assert len([k for k in metrics if k.startswith("loglik/")]) == 31 + 5


def test_figures_of_five_images_and_no_label(datamodule, tmp_path):
    model = make_model(JMVAE)  # no posterior of the others: that row stays blank
    datamodule.setup()
    test = {m: datamodule.splits["test"][m] for m in NAMES}
    classes = datamodule.splits["test"]["label"]
    read = {m: (lambda images: torch.zeros(len(images), dtype=torch.long)) for m in NAMES}
    paths = draw_planned(figure_plan(model, test, classes, tmp_path, read=read))
    assert sorted(p.name for p in paths) == [
        "conditional_generation.png",
        "latent_projection.png",
        "prior_samples.png",
    ]
    assert all(p.stat().st_size > 0 for p in paths)

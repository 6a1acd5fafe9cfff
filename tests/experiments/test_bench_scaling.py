"""The scaling benchmark (experiments/bench/scaling.py): its tiny run times
every requested configuration, counts the calls each model makes per step as
the printed formulas say, and reports and plots every model. No speed checks."""

from __future__ import annotations

import math

import pytest
import torch
from experiments.bench import scaling

from mwvae.config.catalog import model_class, model_names

MULTIMODAL = [n for n in model_names() if not model_class(n).unimodal]


@pytest.fixture(scope="module")
def results() -> dict:
    # One thread: on a busy machine, two threads wait on each other at every
    # operation and the smoke run takes ten times longer. Nothing here is timed.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return scaling.run(tiny=True)
    finally:
        torch.set_num_threads(threads)


def test_every_requested_configuration_has_a_positive_time(results):
    plan, timed = scaling.TINY, model_names()[: scaling.TINY.models]
    requested = {
        "batch_size": (timed, plan.batch_sizes),
        "latent_dim": (timed, plan.latent_dims),
        "num_modalities": ([n for n in timed if n in MULTIMODAL], plan.modality_counts),
    }
    assert set(results["sweeps"]) == set(requested)
    for axis, (models, values) in requested.items():
        sweep = results["sweeps"][axis]
        assert sweep["values"] == list(values)
        assert list(sweep["median_ms"]) == list(models)
        for name in models:
            times = sweep["median_ms"][name]
            assert len(times) == len(values)
            assert all(math.isfinite(t) and t > 0 for t in times), (axis, name, times)
            assert all(n >= plan.min_rounds for n in sweep["steps"][name])


def test_every_timed_multimodal_model_steps_on_polymnist(results):
    """M = 5 with PolyMNIST's convolutional networks, beside the MLP sweeps."""
    five = results["polymnist"]
    timed = [n for n in model_names()[: scaling.TINY.models] if n in MULTIMODAL]
    assert list(five["median_ms"]) == timed
    assert five["fixed"]["num_modalities"] == 5
    for name in timed:
        assert math.isfinite(five["median_ms"][name]) and five["median_ms"][name] > 0
        assert five["min_ms"][name] <= five["median_ms"][name]
        assert five["steps"][name] >= scaling.TINY.min_rounds


def test_a_polymnist_trainee_has_five_colour_images_and_conv_networks():
    model = scaling.build(scaling.model_config("mw_vae", 20, "polymnist"))
    assert model.modality_names == ["m0", "m1", "m2", "m3", "m4"]
    assert scaling.image_shape(model) == (3, 28, 28)
    assert any(isinstance(layer, torch.nn.Conv2d) for layer in model.encoders["m0"].modules())


@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("model", MULTIMODAL)
def test_measured_calls_per_step_match_the_formulas(results, model, num_modalities):
    measured = results["call_counts"][model][str(num_modalities)]
    assert results["expected_calls"][model][str(num_modalities)] == measured  # all exact at M <= 3
    assert measured["encoder"]["max"] >= 1 and measured["latent_samples"]["min"] >= 1


def test_a_printed_formula_is_the_value_computed():
    """MoPoE decodes every non-empty subset's sample with all M decoders, and
    mVAE-PoE's random subsets make its counts a range for M > 3."""
    cost = scaling.COSTS["MoPoE"]
    found = scaling.expected(cost, 5, {"subsets": "all"})
    assert found["decoder"] == {"min": 155, "max": 155, "mean": 155}
    assert found["latent_samples"]["min"] == 31 and found["encoder"]["max"] == 5
    sampled = scaling.expected(cost, 5, {"subsets": "auto"})  # one subset per example beyond M = 3
    assert sampled["decoder"]["max"] == 5 and sampled["latent_samples"]["max"] == 1
    poe = scaling.expected(
        scaling.COSTS["MVAEPoE"], 5, {"subsample": True, "num_random_subsets": 1}
    )
    assert poe["decoder"] == {"min": 12, "max": 14, "mean": 13}  # 2M + s, s in 2..4
    paper = scaling.expected(
        scaling.COSTS["MVAEPoE"], 5, {"subsample": False, "num_random_subsets": 1}
    )
    assert paper["decoder"]["max"] == 5 and paper["latent_samples"]["max"] == 1


def test_latent_samples_are_the_models_normal_draws():
    """MW-VAE draws one sample of each modality's posterior per step (and
    nothing else normal); mVAE-PoE at M = 5 one for the joint posterior, M
    unimodal and one random subset, whose size varies the decoder passes."""
    model = scaling.build(scaling.model_config("mw_vae", 20, 3))
    counts = scaling.count_calls(model, 2)
    assert counts["latent_samples"] == {"min": 3, "max": 3, "mean": 3}
    assert counts["decoder"]["max"] == counts["encoder"]["max"] == 3
    poe = scaling.count_calls(scaling.build(scaling.model_config("mvae_poe", 20, 5)), 30)
    assert poe["latent_samples"]["max"] == poe["latent_samples"]["min"] == 7
    assert 12 <= poe["decoder"]["min"] < poe["decoder"]["max"] <= 14


def test_report_and_plot_cover_every_model(results, tmp_path):
    figure = tmp_path / "scaling.png"
    scaling.plot(results, figure)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    markdown = scaling.to_markdown(results, figure="scaling.png")
    assert markdown.startswith("## Scaling")
    assert "scaling.png" in markdown
    for model in MULTIMODAL:
        assert f"| {model} |" in markdown
    decoders, samples = scaling.COSTS["MoPoE"][1:3]
    assert f"| mopoe | `M` | 2 | 3 | `{decoders}` | 6 | 21 | `{samples}` | 3 | 7 |" in markdown
    assert "Measured counts match" in markdown
    assert "### M = 5 on PolyMNIST (batch=16, latent=20, M=5), ms per step" in markdown

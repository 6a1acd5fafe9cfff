"""The scaling benchmark (experiments/bench/scaling.py): its tiny run times
every requested configuration, counts the calls each model makes per step as
the cost formulas say, and reports and plots every model. No speed checks."""

from __future__ import annotations

import math

import pytest
import scaling
import torch


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
    plan = scaling.TINY
    requested = {
        "batch_size": (plan.size_models, plan.batch_sizes),
        "latent_dim": (plan.size_models, plan.latent_dims),
        "num_modalities": (plan.modality_models, plan.modality_counts),
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


@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("model", scaling.MODALITY_MODELS)
def test_measured_calls_per_step_match_the_formulas(results, model, num_modalities):
    m = num_modalities
    decoders = {
        "mw_vae": m,
        "fmw_vae": m,
        "mvae_poe": 2 * m + (2 if m == 3 else 0),  # joint + M unimodal + one subset of size 2
        "mopoe": m * (2**m - 1),
        "mmvae": m * m,
    }[model]
    measured = results["call_counts"][model][str(m)]
    assert measured["decoder"] == {"min": decoders, "max": decoders, "mean": decoders}
    assert measured["encoder"]["max"] == m
    assert measured == results["expected_calls"][model][str(m)]


def test_report_and_plot_cover_every_model(results, tmp_path):
    figure = tmp_path / "scaling.png"
    scaling.plot(results, figure)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    markdown = scaling.to_markdown(results, figure="scaling.png")
    assert markdown.startswith("## Scaling")
    assert "scaling.png" in markdown
    for model in scaling.MODALITY_MODELS:
        assert model in markdown
    assert "Measured counts match" in markdown

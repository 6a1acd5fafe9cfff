"""The evaluation benchmark (experiments/bench/evaluation.py): its tiny run
checks that the batched likelihood estimator and the two loops agree on the
same draws for every subset, times every part of `evaluate`, and reports
against the 5x target. No speed checks."""

from __future__ import annotations

import json

import pytest
import torch

import evaluation as bench
from mwvae.config import compose_config
from mwvae.train import build_model


@pytest.fixture(scope="module")
def results(mnist_dir) -> dict:
    return bench.run(tiny=True)


@pytest.fixture(scope="module")
def untrained() -> tuple:
    """The default MW-VAE, untrained, and a few random (image, label) examples."""
    cfg = compose_config(["logger=none", "paths.output_dir=unused"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    image = (torch.rand(3, 1, 28, 28) < 0.3).float()
    return model, {"image": image, "label": torch.tensor([3, 0, 7])}


def test_the_loops_reproduce_the_batched_estimates_and_notice_other_draws(untrained):
    model, batch = untrained
    k = 130  # a full chunk and a partial one
    agreement = bench.float64_agreement(model, batch, k)
    assert set(agreement) == set(bench.LOOPS)
    assert max(agreement.values()) < 1e-9
    reference = bench.batched_estimates(model, batch, k, seed=1)
    shifted = bench.proposal_noise(2, k, len(batch["label"]), model.prior_dim)  # other draws
    for loop in bench.LOOPS.values():
        assert bench.max_abs_diff(loop(model, batch, shifted), reference) > 1e-3


def test_the_three_estimators_agree_on_the_same_draws(results):
    lk = results["likelihood"]
    assert lk["subsets"] == ["image", "label", "joint"]
    assert set(lk["max_abs_diff_float64"]) == {"per_example_loop", "per_sample_loop"}
    for diff in lk["max_abs_diff_float64"].values():
        assert diff < 1e-8
    for diff in lk["max_abs_diff"].values():  # float32: rounding of |log p| ~ 500 nats
        assert diff < 1e-3
    means = lk["mean_estimates"]
    assert lk["mean_estimate"] == means["joint"] < means["image"] < 0


def test_every_implementation_is_timed_per_example_and_sample(results):
    lk = results["likelihood"]
    assert lk["scored"] == ["image", "label"]
    for name in bench.IMPLEMENTATIONS:
        assert len(lk["seconds"][name]) == lk["repeats"]
    assert lk["examples"]["per_sample_loop"] <= lk["examples"]["batched"]
    for stat in ("median", "best"):
        us = lk["us_per_example_sample"][stat]
        for name in bench.IMPLEMENTATIONS:
            assert us[name] > 0
        ratio = us["per_sample_loop"] / us["batched"]
        assert lk["speedup_vs_per_sample_loop"][stat] == pytest.approx(ratio)
    low = min(lk["speedup_vs_per_sample_loop"].values())
    assert lk["target_met"] == (low >= bench.TARGET)


def test_the_evaluation_is_timed_with_a_breakdown(results):
    ev = results["evaluation"]
    assert ev["epoch_seconds"] > 0 and ev["evaluate_seconds"] > 0
    assert ev["evaluation_in_epochs"] == pytest.approx(ev["evaluate_seconds"] / ev["epoch_seconds"])
    assert ev["evaluation_in_epochs_cpu"] > 0
    assert ev["classifier"]["cache"] in ("warm", "built")
    assert set(ev["classifier"]["test_accuracy"]) == {"image"}
    parts = {row["part"]: row for row in ev["breakdown"]}
    for name in ("load_classifiers", "reconstruction_errors", "coherences", "likelihood_metrics"):
        assert parts[name]["within"] is None and parts[name]["calls"] == 1
    assert parts["probes"]["within"] is None and parts["alignment"]["within"] is None
    assert parts["cross_coherences"]["within"] == "coherences"
    assert parts["joint_coherence"]["within"] == "coherences"
    assert parts["linear_probe_accuracy"]["within"] == "probes"
    likelihood = ev["settings"]["likelihood"]
    estimates = parts["estimate_log_likelihoods"]  # one call per batch, every subset
    assert estimates["within"] == "likelihood_metrics"
    assert estimates["calls"] == -(-likelihood["num_samples"] // likelihood["batch_size"])
    top = sum(row["seconds"] for row in ev["breakdown"] if row["within"] is None)
    assert top == pytest.approx(ev["evaluate_seconds"])
    assert {"test/loglik/joint", "test/loglik/image", "test/loglik/label"} <= set(ev["metrics"])
    assert ev["figures"]
    for name, (module, _) in bench.PARTS.items():  # the timers are gone once the run is over
        assert getattr(module, name).__code__.co_filename != bench.__file__


def test_the_settings_are_those_of_make_train():
    cfg = compose_config(["logger=none", "paths.output_dir=unused"])
    settings = bench.train_settings(cfg, bench.FULL)
    assert settings["likelihood"]["k"] == 1000 and settings["figures"] is True
    tiny = bench.train_settings(cfg, bench.TINY)
    assert tiny["likelihood"]["k"] == 10 and tiny["likelihood"]["batch_size"] == 20


def test_the_report_states_the_target(results):
    stored = json.loads(json.dumps(results))  # JSON-serialisable, and reported from JSON
    markdown = bench.to_markdown(stored)
    assert markdown.startswith("## Evaluation")
    assert "| implementation |" in markdown and "evaluation / epoch" in markdown
    assert "`estimate_log_likelihoods`" in markdown
    assert "Target met" in markdown or "Target missed" in markdown
    assert f">= {bench.TARGET:g}x" in markdown

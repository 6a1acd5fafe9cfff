"""The evaluation benchmark (experiments/bench/evaluation.py): its tiny run
checks that the batched likelihood estimator and the two loops agree on the
same draws for every subset, times `evaluate` and `likelihood_metrics`, and
reports against the 5x target. No speed checks."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from experiments.bench import evaluation as bench
from experiments.bench.common import build, compose

from mwvae.evaluation.likelihood import estimate_log_likelihoods


@pytest.fixture(scope="module")
def results(mnist_dir) -> dict:
    return bench.run(tiny=True)


@pytest.fixture(scope="module")
def untrained() -> tuple:
    """The default model, untrained, and a few random (image, label) examples."""
    model = build(compose(None, "paths.output_dir=unused")).eval()
    image = (torch.rand(3, 1, 28, 28) < 0.3).float()
    return model, {"image": image, "label": torch.tensor([3, 0, 7])}


def test_the_chunk_is_the_estimators_default():
    signature = inspect.signature(estimate_log_likelihoods)
    assert signature.parameters["k_chunk"].default == bench.CHUNK
    assert bench.FULL["k"] == signature.parameters["k"].default


def test_the_loops_reproduce_the_batched_estimates_and_notice_other_draws(untrained):
    model, batch = untrained
    k, counts = bench.CHUNK + 30, dict.fromkeys(bench.IMPLEMENTATIONS, 3)  # a partial chunk
    double = {m: t.double() if t.is_floating_point() else t for m, t in batch.items()}
    agreement = bench.agreement(model.double(), double, k, counts)
    assert set(agreement) == {"per_example_loop", "per_sample_loop"}
    assert max(agreement.values()) < 1e-9
    other = torch.randn(k, 3, model.prior_dim, dtype=torch.float64)
    for diff in bench.agreement(model, double, k, counts, noise=other).values():
        assert diff > 1e-3
    model.float()


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
    assert lk["scored"] == ["image", "label"] and lk["k_chunk"] == bench.CHUNK
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


def test_the_evaluation_is_timed_with_its_likelihoods(results):
    ev = results["evaluation"]
    assert ev["epoch_seconds"] > 0 and ev["evaluate_seconds"] > 0
    assert ev["evaluation_in_epochs"] == pytest.approx(ev["evaluate_seconds"] / ev["epoch_seconds"])
    assert ev["evaluation_in_epochs_cpu"] > 0
    assert 0 < ev["likelihood_metrics_seconds"] < ev["evaluate_seconds"]
    assert ev["classifier"]["cache"] in ("warm", "built")
    assert set(ev["classifier"]["test_accuracy"]) == {"image"}
    assert {"test/loglik/joint", "test/loglik/image", "test/loglik/label"} <= set(ev["metrics"])
    assert ev["figures"]


def test_the_settings_are_those_of_make_train():
    cfg = compose(None, "paths.output_dir=unused")
    settings = bench.train_settings(cfg, bench.FULL)
    assert settings["likelihood"]["k"] == 1000 and settings["figures"] is True
    tiny = bench.train_settings(cfg, bench.TINY)
    assert tiny["likelihood"]["k"] == 10 and tiny["likelihood"]["batch_size"] == 20


def test_the_report_states_the_target(results):
    stored = json.loads(json.dumps(results))  # JSON-serialisable, and reported from JSON
    markdown = bench.to_markdown(stored)
    assert markdown.startswith("## Evaluation")
    assert "| implementation |" in markdown and "evaluation / epoch" in markdown
    assert "`estimate_log_likelihoods`" in markdown and "| `likelihood_metrics` |" in markdown
    assert "Target met" in markdown or "Target missed" in markdown
    assert f">= {bench.TARGET:g}x" in markdown

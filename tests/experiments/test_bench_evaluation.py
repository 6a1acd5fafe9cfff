"""The evaluation benchmark (experiments/bench/evaluation.py): its tiny run
checks that the batched likelihood estimator and the two loops agree on the
same draws, times every part of `evaluate`, and reports against the 5x
target. No speed checks."""

from __future__ import annotations

import json

import pytest

import evaluation as bench
import mwvae.eval


@pytest.fixture(scope="module")
def results(mnist_dir) -> dict:
    return bench.run(tiny=True)


def test_the_three_estimators_agree_on_the_same_draws(results):
    lk = results["likelihood"]
    assert set(lk["max_abs_diff_float64"]) == {"per_example_loop", "per_sample_loop"}
    for diff in lk["max_abs_diff_float64"].values():
        assert diff < 1e-4
    for diff in lk["max_abs_diff"].values():  # float32: rounding of |log p| ~ 500 nats
        assert diff < 1e-3
    assert lk["mean_estimate"] < 0


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
    parts = {row["part"]: row for row in ev["breakdown"]}
    for name in ("reconstruction_errors", "coherences", "log_likelihoods", "representation"):
        assert parts[name]["within"] is None and parts[name]["calls"] == 1
    assert parts["joint_coherence"]["within"] == "coherences"
    assert parts["importance_log_likelihood(image, label)"]["within"] == "log_likelihoods"
    top = sum(row["seconds"] for row in ev["breakdown"] if row["within"] is None)
    assert top == pytest.approx(ev["evaluate_seconds"])
    assert "test/loglik/joint" in ev["metrics"] and ev["figures"]
    for name in bench.PARTS:  # the timers are gone once the run is over
        assert getattr(mwvae.eval, name).__code__.co_filename != bench.__file__


def test_the_report_states_the_target(results):
    stored = json.loads(json.dumps(results))  # JSON-serialisable, and reported from JSON
    markdown = bench.to_markdown(stored)
    assert markdown.startswith("## Evaluation")
    assert "| implementation |" in markdown and "evaluation / epoch" in markdown
    assert "Target met" in markdown or "Target missed" in markdown
    assert f">= {bench.TARGET:g}x" in markdown

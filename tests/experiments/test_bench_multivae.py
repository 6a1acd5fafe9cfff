"""The bench's MultiVae section: skipped, saying why, where MultiVae is not
installed (a tiny run never installs it); the report's ratio is MultiVae's
fit time over ours."""

from __future__ import annotations

import pytest
from experiments.bench import multivae


def test_a_tiny_run_without_the_peer_environment_skips_and_never_installs(monkeypatch, tmp_path):
    monkeypatch.setattr(multivae, "PEER_ENV", tmp_path / "missing")
    monkeypatch.setattr(multivae, "install", lambda: pytest.fail("a tiny run installed MultiVae"))
    results = multivae.run(tiny=True)
    assert "never install" in results["skipped"]
    assert "Skipped: MultiVae is not importable" in multivae.to_markdown(results)


def test_a_full_run_installs_and_reports_why_it_could_not(monkeypatch, tmp_path):
    monkeypatch.setattr(multivae, "PEER_ENV", tmp_path / "missing")
    monkeypatch.setattr(multivae, "install", lambda: "ERROR: No matching distribution")
    assert "No matching distribution" in multivae.run(tiny=False)["skipped"]


def test_the_ratio_is_multivae_over_ours():
    results = {"target": 2.0, "epochs": 1, "threads": 2, "ratio": 1.5}
    results |= {"mwvae_fit_seconds": [10.0, 12.0], "multivae_fit_seconds": [16.0, 17.0]}
    markdown = multivae.to_markdown(results)
    assert "| mvae_poe / MVAE | 11.0 | 16.5 | 1.50x (missed) |" in markdown
    assert "median of 2 alternating pairs" in markdown

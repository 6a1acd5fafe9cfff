"""The paper's claims are decided by the difference of two means against its
standard error over seeds, in the claimed direction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from claims import CLAIMS, MARGIN, main, verdict


def test_a_difference_beyond_two_standard_errors_decides_the_claim():
    # means 1.0 and 0.0; sample variances 0.02 over 2 seeds each: s.e. sqrt(0.02) = 0.141
    left, right = [0.9, 1.1], [-0.1, 0.1]
    assert verdict(left, right, ">").standard_error == pytest.approx(math.sqrt(0.02))
    assert verdict(left, right, ">").difference == pytest.approx(1.0)
    assert verdict(left, right, ">").word == "holds"
    assert verdict(left, right, "<").word == "fails"
    close = [x + 0.25 for x in right]  # 0.25 < MARGIN x 0.141 apart
    assert verdict(close, right, ">").word == "not separated" and MARGIN == 2.0
    assert verdict(close, right, "<").word == "not separated"


def test_one_seed_has_no_spread_to_judge_by():
    found = verdict([0.9], [0.1, 0.2], ">")
    assert found.word == "one seed" and math.isnan(found.standard_error)
    assert found.difference == pytest.approx(0.75)


def test_claims_name_metrics_that_the_committed_records_hold():
    results = Path(__file__).resolve().parents[2] / "experiments" / "results"
    for data, folder in (("mnist", "compare_5epochs"), ("polymnist", "polymnist_10xall")):
        records = [json.loads(p.read_text()) for p in (results / folder).glob("*.json")]
        for claim in (c for c in CLAIMS if c.data == data):
            for model, metric in (claim.left, claim.right):
                found = [r for r in records if r["choices"]["model"] == model]
                assert found and all(f"test/{metric}" in r["metrics"] for r in found), claim
    assert {c.relation for c in CLAIMS} == {"<", ">"}
    assert {c.data for c in CLAIMS} == {"mnist", "polymnist"}


def test_the_table_has_a_row_per_claim_and_budget_with_both_sides(tmp_path, make_run, capsys):
    for seed, (mw, m) in enumerate([(0.90, 0.10), (0.94, 0.12), (0.92, 0.08)]):
        make_run(tmp_path / f"mw{seed}", "mw_vae", {"test/coherence/image_to_label": mw})
        make_run(tmp_path / f"m{seed}", "m_vae", {"test/coherence/image_to_label": m})
    make_run(tmp_path / "poe", "mvae_poe_paper", {"test/coherence/image_to_label": 0.11})
    main([str(tmp_path)])
    rows = capsys.readouterr().out.splitlines()[2:]
    assert len(rows) == 2  # image -> label against M-VAE and against mVAE-PoE (one seed)
    assert "right label and M-VAE" in rows[0] and rows[0].endswith("| **holds** |")
    assert "| 0.82 +- 0.0163 |" in rows[0]  # 0.92 - 0.10, s.e. sqrt(0.0004/3 + 0.0004/3)
    assert "`mvae_poe_paper` coherence/image_to_label 0.110 (1)" in rows[1]
    assert rows[1].endswith("| **one seed** |")


def test_a_claim_is_decided_by_the_records_of_its_dataset_only(tmp_path, make_run, capsys):
    for seed in range(2):  # M-VAE on PolyMNIST must not stand in for M-VAE on MNIST
        make_run(tmp_path / f"mw{seed}", "mw_vae", {"test/w2": 0.5 + seed / 10})
        make_run(tmp_path / f"m{seed}", "m_vae", {"test/w2": 20 + seed}, data="polymnist")
    with pytest.raises(SystemExit, match="no claim"):
        main([str(tmp_path)])
    for seed in range(2):
        make_run(tmp_path / f"pw{seed}", "mw_vae", {"test/w2": 0.1 * seed}, data="polymnist")
    main([str(tmp_path)])
    (row,) = capsys.readouterr().out.splitlines()[2:]
    assert "five posteriors agree" in row and row.endswith("| **holds** |")

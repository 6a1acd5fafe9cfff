"""Run records: read alike from a sweep and from the records kept of it;
grouped by model in the catalog's order and by budget; linked from a report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from records import budget, budget_text, cell, group, link, model, read_records, record


def test_a_sweep_and_its_records_read_the_same(tmp_path, make_run):
    run = make_run(tmp_path / "sweep" / "0_run", "mw_vae", {"test/w2": 0.5})
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(json.dumps({"test/w2": 0.4}))  # evaluated again
    (run / "machine.json").write_text(json.dumps({"cpu": "x"}))
    kept = tmp_path / "records"
    kept.mkdir()
    (kept / "0_run.json").write_text(json.dumps(record(run, commit="abc", note="n")))

    from_sweep, from_records = read_records([tmp_path / "sweep"]), read_records([kept])
    assert from_sweep[0].pop("folder") == str(run)  # only a live run knows its folder
    assert from_sweep[0]["metrics"] == from_records[0]["metrics"] == {"test/w2": 0.4}
    assert from_records[0]["machine"] == {"cpu": "x"}
    assert (from_records[0]["commit"], from_records[0]["note"]) == ("abc", "n")
    assert {k: v for k, v in from_sweep[0].items() if k not in ("commit", "note")} == {
        k: v for k, v in from_records[0].items() if k not in ("commit", "note")
    }


def test_unfinished_runs_are_skipped_and_a_missing_source_is_an_error(tmp_path, make_run):
    make_run(tmp_path / "sweep" / "done", "mw_vae", {})
    (make_run(tmp_path / "sweep" / "killed", "mw_vae", {}) / "metrics.json").unlink()
    assert [Path(r["folder"]).name for r in read_records([tmp_path / "sweep"])] == ["done"]
    with pytest.raises(SystemExit, match="not a folder"):
        read_records([tmp_path / "nowhere"])


def test_groups_follow_the_catalog_then_the_budget():
    def fake(name, epochs, batches):
        trainer = {"max_epochs": epochs, "limit_train_batches": batches}
        return {"choices": {"model": name}, "config": {"trainer": trainer}}

    records = [fake("mw_vae", 30, None), fake("zz_unknown", 1, 1), fake("mw_vae", 5, 50)]
    records += [fake("fmw_vae", 5, None), fake("mw_vae", 5, 50)]
    groups = group(records, lambda r: (model(r), budget(r)))
    assert [(k, len(v)) for k, v in groups.items()] == [
        (("fmw_vae", (5, math.inf)), 1),
        (("mw_vae", (5, 50)), 2),
        (("mw_vae", (30, math.inf)), 1),
        (("zz_unknown", (1, 1)), 1),  # not in the catalog: last
    ]
    assert [budget_text(b) for _, b in groups] == ["5 x all", "5 x 50", "30 x all", "1 x 1"]


def test_cells_and_links():
    assert cell([]) == "-"
    assert cell([0.5]) == "0.500"
    assert cell([1.0, 3.0]) == "2.000 +- 1.414"
    assert cell([-120.0, -110.0]) == "-115.0 +- 7.1"
    assert link(Path("/a/b/figures/x.png"), Path("/a")) == "b/figures/x.png"
    assert link(Path("/a/b/x.png"), Path("/a/c")) == "../b/x.png"
    assert link(Path("/a/b/x.png"), None) == "x.png"


def test_the_validation_history_keeps_each_epoch_once(tmp_path, make_run):
    run = make_run(tmp_path / "run", "mw_vae", {})
    assert record(run, commit=None)["validation_history"] is None  # no history.csv
    (run / "history.csv").write_text(
        "epoch,step,train/loss,val/loss,val/w2\n"
        "0,50,3.0,,\n"
        "0,99,,2.0,0.5\n"
        "1,199,,1.5,0.4\n"
        "1,199,,1.4,0.3\n"  # epoch 1 again, after a resume: the last row counts
    )
    assert record(run, commit=None)["validation_history"] == {
        "epoch": [1, 2],
        "val/loss": [2.0, 1.4],
        "val/w2": [0.5, 0.3],
    }

"""The PolyMNIST report reads run records by model, averages the Frechet
distances over modalities, and tabulates and plots coherence against k
beside the published curves."""

from __future__ import annotations

import json

import pytest

from polymnist import PUBLISHED, plot, read_runs, table

SEEDS = {  # model -> per seed, coherence for k = 1..4
    "mw_vae": [[0.5, 0.6, 0.7, 0.8], [0.3, 0.4, 0.5, 0.6]],
    "mvtcae": [[0.2, 0.3, 0.4, 0.5]],
}


def write_records(folder, epochs=3):
    folder.mkdir()
    for model, per_seed in SEEDS.items():
        for seed, coherences in enumerate(per_seed):
            metrics = {f"test/coherence/observed_{k}": c for k, c in enumerate(coherences, 1)}
            metrics |= {"test/fd_classifier/m0": 2.0, "test/fd_classifier/m1": 4.0}
            metrics |= {"test/fd_classifier/m1+m2+m3+m4_to_m0": 1.0 + seed}
            metrics |= {"test/fd_classifier/m1_to_m0": 100.0}  # k = 1: not leave-one-out
            record = {
                "choices": {"model": model},
                "metrics": metrics,
                "config": {"trainer": {"max_epochs": epochs, "limit_train_batches": 50}},
            }
            (folder / f"{model}_{seed}_{epochs}.json").write_text(json.dumps(record))


def test_records_are_grouped_and_distances_averaged(tmp_path):
    write_records(tmp_path / "records")
    runs = read_runs([tmp_path / "records"])
    assert {m: len(r) for m, r in runs.items()} == {
        ("mw_vae", (3, 50)): 2,
        ("mvtcae", (3, 50)): 1,
    }
    first = runs["mw_vae", (3, 50)][0]["metrics"]
    assert first["test/fd_classifier/mean"] == pytest.approx(3.0)  # m0, m1 (not the _to_ keys)
    assert first["test/fd_classifier/leave_one_out_mean"] == pytest.approx(1.0)
    assert runs["mw_vae", (3, 50)][1]["metrics"]["test/fd_classifier/leave_one_out_mean"] == 2.0


def test_table_has_mean_and_spread_per_model_and_the_published_rows(tmp_path):
    write_records(tmp_path / "records")
    markdown = table(read_runs([tmp_path / "records"]))
    rows = {line.split(" | ")[0]: line for line in markdown.splitlines()}
    mw_vae = rows["| `mw_vae`"].split(" | ")
    assert mw_vae[1:4] == ["2", "3 x 50", "0.400 +- 0.141"]  # k = 1 over two seeds
    assert rows["| `mvtcae`"].split(" | ")[3] == "0.200"  # one seed: no spread
    for name, values in PUBLISHED.items():
        assert f"| {name}, official PolyMNIST | - | hundreds | {values[0]:.2f} |" in markdown


def test_plot_writes_a_png(tmp_path):
    write_records(tmp_path / "records")
    path = plot(read_runs([tmp_path / "records"]), tmp_path / "figures" / "by_k.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_of_different_budgets_are_never_averaged_together(tmp_path):
    write_records(tmp_path / "short")
    write_records(tmp_path / "long", epochs=20)
    runs = read_runs([tmp_path / "short", tmp_path / "long"])
    assert list(runs) == [  # the catalog's order, then the budget
        ("mvtcae", (3, 50)),
        ("mvtcae", (20, 50)),
        ("mw_vae", (3, 50)),
        ("mw_vae", (20, 50)),
    ]
    rows = [line for line in table(runs).splitlines() if line.startswith("| `mw_vae`")]
    assert [row.split(" | ")[1:3] for row in rows] == [["2", "3 x 50"], ["2", "20 x 50"]]

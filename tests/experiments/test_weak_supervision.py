"""The weak-supervision report reads runs by model, budget and paired fraction."""

from __future__ import annotations

import math

from weak_supervision import plot, read_results, table

RUNS = [  # model, paired fraction, image -> label, label -> image
    ("mw_vae", 1.0, 0.9, 0.8),
    ("mw_vae", 1.0, 0.7, 0.6),  # a second seed
    ("mw_vae", 0.01, 0.5, 0.4),
    ("mvae_poe", 0.01, 0.2, 0.3),
]


def write_sweep(root, make_run):
    for i, (model, fraction, to_label, to_image) in enumerate(RUNS):
        metrics = {
            "test/coherence/image_to_label": to_label,
            "test/coherence/label_to_image": to_image,
        }
        make_run(root / f"{i}_run", model, metrics, {"data": {"paired_fraction": fraction}})
    unfinished = make_run(root / "unfinished", "mw_vae", {})  # a killed job: no metrics.json
    (unfinished / "metrics.json").unlink()


def test_table_and_plot_group_runs_by_model_and_fraction(tmp_path, make_run):
    write_sweep(tmp_path / "sweep", make_run)
    results = read_results([tmp_path / "sweep"])
    assert {m: sorted(r) for m, r in results.items()} == {
        ("mvae_poe", (5, math.inf)): [0.01],
        ("mw_vae", (5, math.inf)): [0.01, 1.0],
    }
    text = table(results)
    to_label = text.split("**label -> image")[0]
    assert "| seeds | epochs x batches | paired 1 | paired 0.01 |" in to_label
    assert "| `mvae_poe` | 1 | 5 x all | - | 0.200 |" in to_label  # one seed: no spread
    assert "| `mw_vae` | 1-2 | 5 x all | 0.800 +- 0.141 | 0.500 |" in to_label
    assert "| `mw_vae` | 1-2 | 5 x all | 0.700 +- 0.141 | 0.400 |" in text.split("**label")[1]
    path = plot(results, tmp_path / "figure.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""The weak-supervision report reads a sweep's runs by model and paired fraction."""

from __future__ import annotations

import json

import yaml

from weak_supervision import plot, read_results, table

RUNS = [  # model, paired fraction, image -> label, label -> image
    ("mw_vae", 1.0, 0.9, 0.8),
    ("mw_vae", 1.0, 0.7, 0.6),  # a second seed
    ("mw_vae", 0.01, 0.5, 0.4),
    ("mvae_poe", 0.01, 0.2, 0.3),
]


def write_sweep(root):
    for i, (model, fraction, to_label, to_image) in enumerate(RUNS):
        run = root / f"{i}_run"
        (run / ".hydra").mkdir(parents=True)
        hydra = {"hydra": {"runtime": {"choices": {"model": model}}}}
        (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
        (run / ".hydra" / "config.yaml").write_text(
            yaml.safe_dump({"data": {"paired_fraction": fraction}})
        )
        metrics = {
            "test/coherence/image_to_label": to_label,
            "test/coherence/label_to_image": to_image,
        }
        (run / "metrics.json").write_text(json.dumps(metrics))
    (root / "unfinished" / ".hydra").mkdir(parents=True)  # a killed job: no metrics.json
    (root / "unfinished" / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))


def test_table_and_plot_group_runs_by_model_and_fraction(tmp_path):
    write_sweep(tmp_path / "sweep")
    results = read_results(tmp_path / "sweep")
    assert {m: sorted(r) for m, r in results.items()} == {
        "mw_vae": [0.01, 1.0],
        "mvae_poe": [0.01],
    }
    text = table(results)
    to_label = text.split("**label -> image")[0]
    assert "| paired 1 | paired 0.01 |" in to_label
    assert "| `mvae_poe` | - | 0.200 |" in to_label  # one seed: no spread
    assert "| `mw_vae` | 0.800 +- 0.141 | 0.500 |" in to_label
    assert "| `mw_vae` | 0.700 +- 0.141 | 0.400 |" in text.split("**label -> image")[1]
    path = plot(results, tmp_path / "figure.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

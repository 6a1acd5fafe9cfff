"""The likelihood-check tables read the estimates of the records as written."""

from __future__ import annotations

import json

from likelihood_table import main


def estimates(estimator, reference, old, ais=None, ais_reference=None):
    row = {
        "estimator": {"mean": estimator, "se": 0.5},
        "reference": {"mean": reference, "se": 0.5},
        "posterior_only": {"mean": old, "se": 0.5},
        "estimator_minus_reference": {"mean": estimator - reference, "se": 0.1},
        "max_abs_gap": 2.0,
    }
    if ais is not None:
        row |= {"ais": {"mean": ais, "se": 1}, "reference_on_ais_examples": {"mean": ais_reference}}
    return row


def write(path, model, subsets):
    checkpoint = f"/runs/3_model={model},seed=0/checkpoints/epoch004.ckpt"
    record = {"checkpoint": checkpoint, "k": 1000, "reference_k": 5000, "ais": {"examples": 20}}
    path.write_text(json.dumps(record | {"subsets": subsets}))
    return str(path)


def test_one_record_shows_every_estimate(tmp_path, capsys):
    subsets = {
        "label": estimates(-2.3181, -2.2911, -5.3634, -2.303, -2.316),
        "joint": estimates(-102.67, -102.42, -106.76, -101.92, -101.85),
    }
    main([write(tmp_path / "a.json", "mw_vae", subsets)])
    lines = capsys.readouterr().out.splitlines()
    assert "estimator, K = 1,000 | reference, K = 5,000" in lines[0]
    assert lines[2] == (  # the joint first, two decimals
        "| log p(x, y) | -102.67 +- 0.50 | -102.42 | -0.25 +- 0.10 (2.0) | -106.76 | -101.92 | -101.85 |"
    )
    assert lines[3].startswith(
        "| log p(y) | -2.318 +- 0.500 | -2.291 | -0.03 +- 0.10 (2.0) | -5.363 |"
    )


def test_several_records_give_one_row_of_gaps_per_model(tmp_path, capsys):
    paths = [
        write(tmp_path / "b.json", "mw_vae", {"joint": estimates(-110.0, -109.5, -112.0)}),
        write(tmp_path / "a.json", "jmvae", {"joint": estimates(-100.0, -100.25, -100.5)}),
    ]
    main(paths)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| model | log p(x, y): gap | old shortfall |"
    assert out[2:] == ["| `jmvae` | +0.25 | 0.50 |", "| `mw_vae` | -0.50 | 2.00 |"]

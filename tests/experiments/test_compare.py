"""The comparison report: one row per model and budget, the reconstruction
figures of a sweep linked where they are, nothing written unless asked."""

from __future__ import annotations

import json

import pytest

from compare import curve, main
from records import read_records, record


def write_sweep(root, make_run):
    """Three runs; the m_vae one drew no figures."""
    for i, (name, seed_value) in enumerate([("mw_vae", 0.9), ("mw_vae", 0.7), ("m_vae", 0.1)]):
        run = make_run(
            root / f"{i}_model={name}", name, {"test/coherence/image_to_label": seed_value}
        )
        if name == "mw_vae":
            (run / "figures").mkdir()
            (run / "figures" / "reconstructions.png").write_bytes(b"png")


def files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_sweep_is_tabulated_and_its_grids_linked_in_place(tmp_path, make_run, capsys):
    sweep = tmp_path / "sweep"
    write_sweep(sweep, make_run)
    before = files(tmp_path)
    main([str(sweep)])
    out = capsys.readouterr().out
    assert files(tmp_path) == before  # nothing written
    assert "| `m_vae` | 1 | 5 x all | 0.100 |" in out
    assert "| `mw_vae` | 2 | 5 x all | 0.800 +- 0.141 |" in out
    # the report goes into the sweep (make compare): links relative to it, first run by name
    assert (
        "| `mw_vae` | 5 x all | ![mw_vae reconstructions](0_model=mw_vae/figures/reconstructions.png) |"
        in out
    )
    assert "| `m_vae` | 5 x all | - |" in out  # a run without the figure


def test_grids_are_copied_only_when_asked_and_linked_from_the_report(tmp_path, make_run, capsys):
    sweep = tmp_path / "sweep"
    write_sweep(sweep, make_run)
    main(
        [
            str(sweep),
            "--figures",
            str(tmp_path / "docs" / "panels"),
            "--report-dir",
            str(tmp_path / "docs"),
        ]
    )
    out = capsys.readouterr().out
    assert (tmp_path / "docs" / "panels" / "mw_vae_reconstructions.png").read_bytes() == b"png"
    assert "![mw_vae reconstructions](panels/mw_vae_reconstructions.png)" in out


def test_records_give_the_table_without_grids(tmp_path, make_run, capsys):
    run = make_run(tmp_path / "sweep" / "0", "mw_vae", {"test/w2": 0.5})
    kept = tmp_path / "records"
    kept.mkdir()
    (kept / "0.json").write_text(json.dumps(record(run, commit=None)))
    main([str(kept)])
    out = capsys.readouterr().out
    assert "| `mw_vae` | 1 | 5 x all |" in out and "Reconstructions" not in out


def test_bare_prints_the_chosen_columns_alone(tmp_path, make_run, capsys):
    sweep = tmp_path / "sweep"
    write_sweep(sweep, make_run)
    main([str(sweep), "--bare", "--columns", "w2,coherence/image_to_label"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| model | seeds | epochs x batches | W2^2 | image -> label |"
    assert lines[-1] == "| `mw_vae` | 2 | 5 x all | - | 0.800 +- 0.141 |"
    assert len(lines) == 4  # header, rule, two models: no heading, no grids


def test_an_unknown_column_is_refused_with_the_choices(tmp_path, make_run, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--columns", "w3"])
    assert "unknown --columns ['w3']; choose from coherence/image_to_label," in (
        capsys.readouterr().err
    )


def test_captions_selects_the_token_caption_columns(tmp_path, make_run, capsys):
    metrics = {"test/caption_attributes/image_to_caption/colours": 0.5}
    make_run(tmp_path / "sweep" / "0", "mw_vae", metrics)
    main([str(tmp_path / "sweep"), "--bare", "--columns", "captions"])
    header, _, row = capsys.readouterr().out.strip().splitlines()
    assert header.startswith("| model | seeds | epochs x batches | colours, from the image |")
    assert row.startswith("| `mw_vae` | 1 | 5 x all | 0.500 | - |")
    assert "image -> label" not in header


def test_curves_follow_the_validation_history_over_seeds(tmp_path, make_run):
    sweep = tmp_path / "sweep"
    for seed, values in enumerate([(0.5, 0.7), (0.7, 0.9)]):
        run = make_run(sweep / f"{seed}", "mw_vae", {})
        rows = ["epoch,step,train/loss,val/loss,val/coherence/image_to_label"]
        rows += [f"{e},{10 * e + 5},1.0,," for e in range(2)]  # training rows: no validation
        rows += [f"{e},{10 * e + 9},,2.0,{v}" for e, v in enumerate(values)]
        (run / "history.csv").write_text("\n".join(rows) + "\n")
    records = read_records([sweep])
    assert curve(records, "val/coherence/image_to_label") == ([1, 2], [[0.5, 0.7], [0.7, 0.9]])
    assert curve(records, "val/w2") is None  # not logged by these runs
    main([str(sweep), "--bare", "--curves", str(tmp_path / "curves.png")])
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_the_report_links_the_curves_from_where_it_goes(tmp_path, make_run, capsys):
    sweep = tmp_path / "sweep"
    write_sweep(sweep, make_run)
    main([str(sweep), "--curves", str(sweep / "curves.png")])  # as make compare does
    assert "![Validation metrics against epochs](curves.png)" in capsys.readouterr().out

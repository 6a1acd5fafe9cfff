"""The benchmark suite's own sections (training, roofline, captions), its
shared helpers and the report `make bench` writes, run on tiny
configurations. Nothing here checks a speed: benchmarks measure, tests check
that they run and count correctly."""

from __future__ import annotations

import json

import pytest
import torch
from experiments.bench import caption_embedding, common, roofline, training
from experiments.bench import run as suite

from mwvae.config.catalog import model_names


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("reports")
    markdown_path, json_path = suite.run(["training", "roofline"], tiny=True, out=out)
    return markdown_path.read_text(), json.loads(json_path.read_text())


def test_report_describes_the_machine_and_every_section(tiny_report):
    markdown, report = tiny_report
    assert report["machine"]["logical_cores"] >= 1
    assert report["machine"]["torch"] == torch.__version__
    assert set(report["seconds"]) == {"training", "roofline"}
    for title in ("# Benchmark report", "## Training throughput", "## Roofline"):
        assert title in markdown
    assert "Lightning's floor" in markdown


def test_training_runs_both_loops_over_the_same_batches(tiny_report):
    _, report = tiny_report
    results = report["training"]
    assert list(results["models"]) == model_names()[:2]  # the catalog's first, in tiny runs
    for name, result in results["models"].items():
        assert result["steps"] == 4, name  # 512 examples in batches of 128, each side
        assert result["plain_seconds"] > 0 and result["trainer_seconds"] > 0
        assert result["ratio"] == pytest.approx(result["plain_seconds"] / result["trainer_seconds"])
    fastest = max(results["models"], key=lambda n: results["models"][n]["plain_samples_per_s"])
    assert next(iter(results["large_batch"])) == fastest
    assert list(results["floor"]) == [fastest] and results["floor"][fastest]["steps"] == 4
    assert all(r["batch_size"] == training.LARGE_BATCH for r in results["large_batch"].values())


def test_roofline_counts_flops_like_the_flop_counter(tiny_report):
    """The recorded matrix products, counted as 2 m n k, are every FLOP the
    counter sees in an MLP model: the recorder misses none and counts right."""
    _, report = tiny_report
    ((name, result),) = report["roofline"]["models"].items()
    assert name == model_names()[0]
    assert result["gemm_flops_per_step"] == result["flops_per_step"] > 0
    assert result["fraction"] > 0


def test_models_given_replace_the_catalog_in_the_sections_that_sweep_them(tmp_path):
    _, json_path = suite.run(["roofline"], tiny=True, out=tmp_path, models=["vae"])
    assert list(json.loads(json_path.read_text())["roofline"]["models"]) == ["vae"]


def test_gemm_flops_of_each_product_kind():
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    batched = (torch.randn(2, 3, 4), torch.randn(2, 4, 5))
    with roofline.GemmRecorder() as recorder:
        a @ b
        torch.addmm(torch.zeros(5), a, b)
        torch.bmm(*batched)
    counted = [roofline.gemm_flops(func, layout) for func, layout, _ in recorder.calls]
    assert counted == [2 * 3 * 4 * 5, 2 * 3 * 4 * 5, 2 * 2 * 3 * 4 * 5]


def test_replayed_products_keep_shapes_and_transposes():
    with roofline.GemmRecorder() as recorder:
        torch.randn(4, 3).t() @ torch.randn(4, 5)
    ((func, layout, _),) = recorder.calls
    first, second = roofline.materialise(layout)
    assert first.shape == (3, 4) and first.stride() == (1, 3)  # still a transposed view
    assert func(first, second).shape == (3, 5)


def test_normal_draws_are_recorded_and_replayed():
    with common.NormalDraws() as record:
        x = torch.randn(3, 2)
        y = torch.randn_like(x)
        z = torch.empty(4).normal_()
        torch.rand(5)  # uniform: not a normal draw
    assert [t.shape for t in record.drawn] == [(3, 2), (3, 2), (4,)]
    noise = torch.arange(10.0).view(5, 2)
    with common.NormalDraws(noise):
        first, second = torch.randn(2, 2), torch.randn(3, 2)
    assert torch.equal(torch.cat([first, second]), noise)
    assert (
        torch.equal(record.drawn[0], x) and torch.equal(record.drawn[2], z) and y.shape == x.shape
    )


def test_interleaved_rotates_the_order_and_keeps_the_last_values():
    calls = []
    runs = {name: (lambda name=name: calls.append(name) or len(calls)) for name in "abc"}
    seconds, values = common.interleaved(runs, repeats=3)
    assert calls == list("abcbcacab")
    assert values == {"a": 8, "b": 9, "c": 7}  # the last round: c, a, b
    assert all(len(s) == 3 for s in seconds.values())


def test_tables_align_their_columns():
    lines = common.table("model | a | b", [["x", 1, 2.5], "y | 3 | 4"])
    assert lines == ["| model | a | b |", "|---|---:|---:|", "| x | 1 | 2.5 |", "| y | 3 | 4 |"]


def lockstep(plain_ms: float, overhead_ms: float) -> dict:
    steps, batch = 100, 128
    plain, trainer = steps * plain_ms / 1e3, steps * (plain_ms + overhead_ms) / 1e3
    return {
        "steps": steps,
        "samples": steps * batch,
        "batch_size": batch,
        "plain_seconds": plain,
        "plain_samples_per_s": steps * batch / plain,
        "trainer_samples_per_s": steps * batch / trainer,
        "ratio": plain / trainer,
        "trainer_overhead_ms_per_step": overhead_ms,
    }


def test_training_markdown_names_the_models_that_miss_the_target():
    # Ratios 99 / (99 + 1) = 0.99 and 9 / (9 + 1) = 0.90.
    results = {"target": 0.95, "models": {"fast": lockstep(99.0, 1.0), "slow": lockstep(9.0, 1.0)}}
    markdown = training.to_markdown(results)
    assert "Missed: slow by 0.050" in markdown and "fast by" not in markdown


def test_ratio_at_lightnings_floor_separates_its_misses_from_the_frameworks():
    # Floor 0.5 ms: a 4 ms step can reach at most 4 / 4.5 = 0.889 inside
    # Lightning's loop, a 19 ms step 19 / 19.5 = 0.974.
    models = {"small": lockstep(4.0, 0.8), "large": lockstep(19.0, 0.9)}
    results = {"target": 0.95, "models": models, "floor": {"small": lockstep(4.0, 0.5)}}
    assert training.at_floor(models["small"], 0.5) == pytest.approx(4.0 / 4.5)
    markdown = training.to_markdown(results)
    assert "| small | 32000 | 26667 | 0.833 (missed) | +0.80 | 0.889 |" in markdown
    assert "| large | 6737 | 6432 | 0.955 | +0.90 | 0.974 |" in markdown
    assert "below 0.95): small." in markdown
    assert "add +0.30 ms to it" in markdown


def test_caption_section_agrees_with_sentence_transformers_and_reads_its_cache():
    results = caption_embedding.run(tiny=True)
    assert results["max_abs_diff"] < 1e-5
    assert results["cache"]["second_run_embed_calls"] == 0
    assert "## Caption embedding" in caption_embedding.to_markdown(results)
    captions = caption_embedding.make_captions(50)
    assert captions == caption_embedding.make_captions(50) and len(set(captions)) > 40
    assert all(8 <= len(c.split()) <= 15 for c in captions)


def test_a_report_renders_again_from_its_json(tiny_report, tmp_path):
    markdown, report = tiny_report
    saved = tmp_path / "2026-01-01.json"
    saved.write_text(json.dumps(report))
    rendered = suite.render(saved).read_text()
    assert rendered.split("\n", 1)[1] == markdown.split("\n", 1)[1]  # all but the dated title


def test_the_floor_steps_a_bare_module_on_its_objective_alone():
    cfg = common.compose("vae", "data.subset={train:256,val:128,test:128}")
    model = training.bare(common.build(cfg))
    batch = common.synthetic_batch(["image"], 8)
    torch.manual_seed(0)
    step = model.training_step(batch, 0)
    torch.manual_seed(0)
    assert torch.equal(step, model.objective(batch).loss)
    assert model.on_train_batch_start(batch, 0) is None and model.on_train_epoch_end() is None

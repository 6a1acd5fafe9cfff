"""The benchmark suite's own sections (training, roofline, captions) and the
report `make bench` writes, run on tiny configurations. Nothing here checks a
speed: benchmarks measure, tests check that they run and count correctly."""

from __future__ import annotations

import json

import caption_embedding
import pytest
import roofline
import run as suite
import torch
import training


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


def test_training_runs_both_loops_over_the_same_batches(tiny_report):
    _, report = tiny_report
    for name, result in report["training"]["models"].items():
        assert result["steps"] == 4, name  # 512 examples in batches of 128, each side
        assert result["plain_seconds"] > 0 and result["trainer_seconds"] > 0
        assert result["ratio"] == pytest.approx(result["plain_seconds"] / result["trainer_seconds"])


def test_roofline_counts_flops_like_the_flop_counter(tiny_report):
    """The recorded matrix products, counted as 2 m n k, are every FLOP the
    counter sees in an MLP model: the recorder misses none and counts right."""
    _, report = tiny_report
    result = report["roofline"]["models"]["mw_vae"]
    assert result["gemm_flops_per_step"] == result["flops_per_step"] > 0
    assert result["fraction"] > 0


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


def test_training_markdown_names_the_models_that_miss_the_target():
    results = {
        "target": 0.95,
        "models": {
            name: {
                "steps": 10,
                "samples": 1280,
                "batch_size": 128,
                "plain_samples_per_s": 100.0,
                "trainer_samples_per_s": 100.0 * ratio,
                "ratio": ratio,
                "trainer_overhead_ms_per_step": 1.0,
            }
            for name, ratio in {"fast": 0.99, "slow": 0.90}.items()
        },
    }
    markdown = training.to_markdown(results)
    assert "Missed: slow by 0.050" in markdown and "fast by" not in markdown


def test_caption_section_agrees_with_sentence_transformers_and_reads_its_cache():
    results = caption_embedding.run(tiny=True)
    assert results["max_abs_diff"] < 1e-5
    assert results["cache"]["second_run_embed_calls"] == 0
    assert "## Caption embedding" in caption_embedding.to_markdown(results)


def test_a_report_renders_again_from_its_json(tiny_report, tmp_path):
    markdown, report = tiny_report
    saved = tmp_path / "2026-01-01.json"
    saved.write_text(json.dumps(report))
    rendered = suite.render(saved).read_text()
    assert rendered.split("\n", 1)[1] == markdown.split("\n", 1)[1]  # all but the dated title

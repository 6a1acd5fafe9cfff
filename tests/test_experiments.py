"""Every paper-experiment make target names an experiment config that composes
and runs (one batch of each stage; the full runs are for users)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mwvae.config import CONF_DIR
from mwvae.data.coco_demo import generate_coco_demo
from mwvae.training import train
from tests.test_train import config

ROOT = Path(__file__).resolve().parents[1]


def experiment_targets() -> dict[str, str]:
    """make target -> the experiment it runs, read from the Makefile."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = r"^([\w-]+): install ##.*\n(?:\t.*\n)*?\t.*experiment=(\w+)"
    found = re.findall(recipe, makefile, re.MULTILINE)
    return dict(found)


def test_every_paper_figure_has_a_target():
    targets = experiment_targets()
    assert {"exp-mvae-poe", "exp-m-vae", "exp-mw-vae", "exp-fmw-vae", "exp-coco"} <= set(targets)
    for experiment in targets.values():
        assert (CONF_DIR / "experiment" / f"{experiment}.yaml").exists()


@pytest.fixture(scope="module")
def tiny_coco(tmp_path_factory) -> Path:
    return generate_coco_demo(tmp_path_factory.mktemp("coco") / "root", num_train=20, num_val=10)


@pytest.mark.parametrize(("target", "experiment"), sorted(experiment_targets().items()))
def test_experiment_runs_one_batch(tmp_path, tiny_coco, target, experiment):
    data = {
        "coco": [f"data.root={tiny_coco}", f"data.cache_dir={tmp_path}/cache"],
        "coco_demo": ["data.num_train=20", "data.num_val=10", f"paths.data_dir={tmp_path}"],
        # The tests' K = 20 is below the draws five modalities need (draws_needed).
        "polymnist": ["evaluation.likelihood.k=100", "data.subset={train:256,val:128,test:128}"],
    }.get(experiment, [])
    cfg = config(tmp_path, f"experiment={experiment}", *data, "debug=fast")
    metrics, objects = train(cfg)
    assert objects["trainer"].state.finished
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))

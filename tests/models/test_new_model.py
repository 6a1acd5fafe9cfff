"""The README's promise: a new model is one Python file and one YAML. A toy
model written in a temporary folder, outside the package, trains one step
through the CLI, with its own option checked like every other."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.test_train import run_cli

MODEL_FILE = '''
from dataclasses import dataclass

import torch

from mwvae.models.mw_vae import MWVAE
from mwvae.options import bounded


class ToyVAE(MWVAE):
    """MW-VAE whose loss also pays `tax` per step (a toy option)."""

    @dataclass
    class Options(MWVAE.Options):
        tax: float = bounded(0.5, minimum=0)

    def objective(self, batch):
        terms = super().objective(batch)
        terms.extra["tax"] = torch.tensor(self.options.tax)
        terms.loss = terms.loss + terms.extra["tax"]
        return terms
'''

MODEL_CONFIG = """
# A toy model: MW-VAE plus a constant.
_target_: toy_model.ToyVAE
tax: 2.0
"""


@pytest.fixture
def toy(tmp_path) -> Path:
    (tmp_path / "toy_model.py").write_text(textwrap.dedent(MODEL_FILE))
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "toy.yaml").write_text(MODEL_CONFIG)
    return tmp_path


def run_toy(toy: Path, *overrides: str):
    return run_cli(
        "model=toy",
        f"hydra.searchpath=[file://{toy}/conf]",
        "debug=fast",
        *overrides,
        run_dir=toy / "run",
        env={"PYTHONPATH": str(toy)},
    )


def test_a_model_in_one_file_and_one_yaml_trains_through_the_cli(toy):
    result = run_toy(toy, "model.align_weight=3")
    assert result.returncode == 0, result.stderr[-3000:]
    saved = OmegaConf.load(toy / "run" / "config.yaml")
    # Its own option from its YAML, the inherited ones at MW-VAE's defaults unless set.
    assert saved.model._target_ == "toy_model.ToyVAE"
    assert saved.model.tax == 2.0 and saved.model.align_weight == 3.0
    assert saved.model.beta == 1.0


def test_a_new_models_options_are_checked_like_any_other(toy):
    misspelt = run_toy(toy, "model.taks=1")
    assert misspelt.returncode != 0
    assert "model.taks: ToyVAE has no option 'taks'" in misspelt.stderr
    assert "Traceback" not in misspelt.stderr
    negative = run_toy(toy, "model.tax=-1")
    assert negative.returncode != 0
    assert "model.tax: must be >= 0, got -1" in negative.stderr

"""The side-by-side with MultiVae starts both trainings from the weights
`mwvae.train` builds, and says how to get MultiVae when it is missing."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

import mwvae.training
from multivae_side_by_side import METRICS, PEERS, config, main
from mwvae.training import seeded_model_and_data


def test_both_trainings_start_from_the_weights_train_builds(tmp_path, monkeypatch):
    cfg = config(3, 1, tmp_path, "{train:64,val:32,test:32}")
    built = {}

    def capture(cfg):  # what `train` builds, before it trains
        model = build(cfg)
        built.update({k: v.clone() for k, v in model.state_dict().items()})
        raise KeyboardInterrupt

    build = mwvae.training.build_model
    monkeypatch.setattr(mwvae.training, "build_model", capture)
    with pytest.raises(KeyboardInterrupt):
        mwvae.training.train(cfg)
    monkeypatch.undo()
    model, _ = seeded_model_and_data(cfg)
    assert built and all(torch.equal(v, built[k]) for k, v in model.state_dict().items())
    other, _ = seeded_model_and_data(config(4, 1, tmp_path, "{train:64,val:32,test:32}"))
    assert not torch.equal(
        other.state_dict()["decoders.image.net.0.weight"], built["decoders.image.net.0.weight"]
    )


@pytest.mark.skipif(importlib.util.find_spec("multivae") is not None, reason="MultiVae is here")
def test_without_multivae_it_says_how_to_get_it():
    with pytest.raises(SystemExit, match="make peer-multivae"):
        main(["--seeds", "0"])


def test_records_are_tabulated_per_implementation_and_setting(tmp_path, capsys):
    def side(accuracy, seconds):
        metrics = {k: accuracy for k in METRICS}
        return {"metrics": metrics, "fit_seconds": seconds}

    seeds = [
        {"seed": 0, "mwvae": side(0.5, 10.0), "multivae": side(0.7, 20.0)},
        {"seed": 1, "mwvae": side(0.7, 12.0), "multivae": side(0.7, 22.0)},
    ]
    path = tmp_path / "record.json"
    path.write_text(json.dumps({"epochs": 5, "overrides": ["a=1"], "seeds": seeds}))
    main(["--table", str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[2]
        == "| mvae_poe | mwvae | a=1 | 5 | 2 | " + "0.600 +- 0.141 | " * 3 + "11.0 +- 1.4 |"
    )
    assert (
        lines[3]
        == "| mvae_poe | multivae | a=1 | 5 | 2 | " + "0.700 +- 0.000 | " * 3 + "21.0 +- 1.4 |"
    )
    record = {"model": "mopoe", "model_overrides": ["model.subsets=sampled"], "epochs": 5}
    path.write_text(json.dumps(record | {"seeds": seeds}))
    main(["--table", str(path)])
    ours, theirs = capsys.readouterr().out.splitlines()[2:4]
    assert ours.startswith("| mopoe (model.subsets=sampled) | mwvae | defaults | 5 | 2 |")
    assert theirs.startswith("| mopoe | multivae | defaults | 5 | 2 |")


def test_our_mopoe_is_configured_to_compute_what_multivaes_computes(tmp_path):
    cfg = config(0, 1, tmp_path, model="mopoe")
    assert cfg.model._target_.endswith("MoPoE") and "mopoe" in PEERS
    assert cfg.model.subsets == "sampled" and cfg.model.prior_expert == "whole_set"
    assert cfg.model.kl_warmup_epochs == 0  # MultiVae's MoPoE has no warm-up
    # MultiVae's JMVAE anneals both KL terms over its warm-up: none on either side
    assert config(0, 1, tmp_path, model="jmvae").model.kl_warmup_epochs == 0

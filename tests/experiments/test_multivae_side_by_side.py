"""The side-by-side with MultiVae starts both trainings from the weights
`mwvae.train` builds, and says how to get MultiVae when it is missing."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import mwvae.train
from multivae_side_by_side import config, initialised, main


def test_both_trainings_start_from_the_weights_train_builds(tmp_path, monkeypatch):
    cfg = config(3, 1, tmp_path, "{train:64,val:32,test:32}")
    built = {}

    def capture(cfg):  # what `train` builds, before it trains
        model = build(cfg)
        built.update({k: v.clone() for k, v in model.state_dict().items()})
        raise KeyboardInterrupt

    build = mwvae.train.build_model
    monkeypatch.setattr(mwvae.train, "build_model", capture)
    with pytest.raises(KeyboardInterrupt):
        mwvae.train.train(cfg)
    monkeypatch.undo()
    model, _ = initialised(cfg)
    assert built and all(torch.equal(v, built[k]) for k, v in model.state_dict().items())
    other, _ = initialised(config(4, 1, tmp_path, "{train:64,val:32,test:32}"))
    assert not torch.equal(
        other.state_dict()["decoders.image.net.0.weight"], built["decoders.image.net.0.weight"]
    )


@pytest.mark.skipif(importlib.util.find_spec("multivae") is not None, reason="MultiVae is here")
def test_without_multivae_it_says_how_to_get_it():
    with pytest.raises(SystemExit, match="make peer-multivae"):
        main(["--seeds", "0"])

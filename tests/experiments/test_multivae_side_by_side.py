"""The side-by-side with MultiVae starts both trainings from the weights
`mwvae.train` builds, and says how to get MultiVae when it is missing."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

import mwvae.training
from multivae_side_by_side import METRICS, PEERS, config, main, peer_model
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
    record = {"model": "mmvae", "peer_options": {"K": 1, "loss": "iwae_looser"}, "epochs": 5}
    path.write_text(json.dumps(record | {"seeds": seeds}))
    main(["--table", str(path)])
    ours, theirs = capsys.readouterr().out.splitlines()[2:4]
    assert ours.startswith("| mmvae | mwvae | defaults | 5 | 2 |")
    assert theirs.startswith("| mmvae (K=1, loss=iwae_looser) | multivae | defaults | 5 | 2 |")


def test_our_mopoe_is_configured_to_compute_what_multivaes_computes(tmp_path):
    cfg = config(0, 1, tmp_path, model="mopoe")
    assert cfg.model._target_.endswith("MoPoE") and "mopoe" in PEERS
    assert cfg.model.subsets == "sampled" and cfg.model.prior_expert == "whole_set"
    assert cfg.model.kl_warmup_epochs == 0  # MultiVae's MoPoE has no warm-up
    # MultiVae's JMVAE anneals both KL terms over its warm-up: none on either side
    assert config(0, 1, tmp_path, model="jmvae").model.kl_warmup_epochs == 0


@pytest.mark.skipif(
    importlib.util.find_spec("multivae") is None, reason="needs MultiVae (.peer-env)"
)
# Not mopoe: its subset per example comes from other random draws in MultiVae
# (a one-hot categorical) than in ours (uniform scores), so the same seed
# gives another subset; its agreement rests on the side-by-side over seeds.
@pytest.mark.parametrize("model", ["mmvae", "jmvae", "mvae_poe"])
def test_multivaes_objective_is_ours_on_one_batch(tmp_path, model):
    """Run in .peer-env (`PYTHONPATH=src:experiments .peer-env/bin/python -m pytest
    tests/experiments/test_multivae_side_by_side.py`): on the same networks,
    batch and standard normal draws, MultiVae's `loss_sum` (over the batch) is
    ours (a mean) times the batch size, so the side-by-side compares the two
    implementations of one objective."""
    from multivae.data.datasets.base import MultimodalBaseDataset

    cfg = config(0, 1, tmp_path, "{train:64,val:32,test:32}", model=model)
    ours, datamodule = seeded_model_and_data(cfg)
    datamodule.setup()
    peer, dataset = peer_model(ours, datamodule, cfg)
    batch = {k: v[:32] for k, v in datamodule.splits["train"].items()}
    torch.manual_seed(1)
    expected = ours.objective(batch).loss.item() * 32
    whole = dataset("train")
    inputs = MultimodalBaseDataset(data={k: v[:32] for k, v in whole.data.items()})
    LATE = 10_000  # MultiVae's epoch: past any warm-up, so at full beta as ours is outside training
    torch.manual_seed(1)
    found = peer(inputs, epoch=LATE).loss_sum.item()
    assert found == pytest.approx(expected, rel=1e-5)
    torch.manual_seed(2)  # other draws give another value: the draws are shared, not ignored
    assert peer(inputs, epoch=LATE).loss_sum.item() != pytest.approx(expected, rel=1e-5)

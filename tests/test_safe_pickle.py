import gzip
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mwvae import UntrustedFileError, check_targets, load_model
from mwvae.config import compose_config
from mwvae.data import MNISTDataModule, mnist_source
from mwvae.data.mnist_source import DatasetMissingError
from mwvae.models import MWVAE
from mwvae.safe_pickle import UnsafePickleError, restricted_loads
from mwvae.training import train
from tests.models.tiny import make_model

ROOT = Path(__file__).resolve().parents[1]


class RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_a_pickle_that_calls_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(RunsAShellCommand(marker), protocol=2)
    with pytest.raises(UnsafePickleError, match="system"):
        restricted_loads(payload)
    assert not marker.exists()


def test_refuses_globals_outside_the_allowed_set():
    payload = pickle.dumps(np.arange(3), protocol=2)  # numpy>=2 names numpy._core
    with pytest.raises(UnsafePickleError):
        restricted_loads(payload, allowed=frozenset())


@pytest.fixture
def crafted_archive(tmp_path):
    """A data directory whose MNIST archive is a gzip'd pickle that runs a
    shell command, and the file that command would create."""
    marker = tmp_path / "pwned"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    payload = gzip.compress(pickle.dumps(RunsAShellCommand(marker), protocol=2))
    (data_dir / mnist_source.ARCHIVE_NAME).write_bytes(payload)
    return data_dir, marker, payload


def test_a_crafted_mnist_archive_is_refused_before_unpickling(crafted_archive):
    data_dir, marker, _ = crafted_archive
    with pytest.raises(DatasetMissingError, match="corrupt \\(SHA-256 mismatch\\)"):
        MNISTDataModule(data_dir=str(data_dir)).setup()
    assert not marker.exists()


def test_a_crafted_archive_with_the_pinned_checksum_is_still_not_run(crafted_archive, monkeypatch):
    # Were the pinned SHA-256 itself wrong, the restricted unpickler still refuses.
    data_dir, marker, payload = crafted_archive
    monkeypatch.setattr(mnist_source, "ARCHIVE_SHA256", hashlib.sha256(payload).hexdigest())
    with pytest.raises(UnsafePickleError, match="refusing to unpickle global '.*system'"):
        MNISTDataModule(data_dir=str(data_dir)).setup()
    assert not marker.exists()
    assert not list(data_dir.glob("*.safetensors"))  # no cache of it either


@pytest.fixture
def crafted_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": RunsAShellCommand(marker), "mwvae_model_class": "x.y"}, path)
    return path, marker


def test_load_model_refuses_a_checkpoint_that_runs_code(crafted_checkpoint):
    path, marker = crafted_checkpoint
    with pytest.raises(UntrustedFileError, match="not a checkpoint mwvae can load safely"):
        load_model(path)
    assert not marker.exists()


def test_load_model_refuses_a_checkpoint_whose_networks_are_not_mwvaes(tmp_path):
    """A plain-data checkpoint passes weights_only, but its hyperparameters go
    through Hydra's instantiate: a foreign `_target_` must be refused first."""
    model = make_model(MWVAE)
    checkpoint = {
        "mwvae_model_class": "mwvae.models.MWVAE",
        "hyper_parameters": dict(model.hparams),  # the model's own copy of the specs
        "state_dict": model.state_dict(),
    }
    checkpoint["hyper_parameters"]["modalities"]["image"]["encoder"]["_target_"] = "os.system"
    path = tmp_path / "foreign.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(UntrustedFileError, match="os.system"):
        load_model(path)


def test_training_refuses_to_resume_from_a_checkpoint_that_runs_code(crafted_checkpoint, tmp_path):
    # mwvae.checkpoints reads ckpt_path (weights_only=True) before Lightning touches it.
    path, marker = crafted_checkpoint
    cfg = compose_config(
        [
            "logger=none",
            f"paths.root_dir={ROOT}",
            "callbacks.progress_bar.refresh_rate=0",
            "data.subset={train:64,val:64,test:64}",
            f"paths.output_dir={tmp_path / 'run'}",
            f"ckpt_path={path}",
        ]
    )
    with pytest.raises(UntrustedFileError, match="not a checkpoint mwvae can load safely"):
        train(cfg)  # the CLI prints it as `error: ...`
    assert not marker.exists()


def test_targets_outside_mwvae_and_torch_optim_are_refused():
    spec = {"a": {"_target_": "mwvae.nets.MLPEncoder"}, "b": [{"_target_": "subprocess.run"}]}
    with pytest.raises(UntrustedFileError, match="subprocess.run"):
        check_targets(spec, "spec")
    check_targets({"optimizer": {"_target_": "torch.optim.Adam"}}, "spec")

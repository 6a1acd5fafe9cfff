"""Data-parallel training (`trainer=ddp`): each rank loads its own shard of
every epoch, evaluation metrics are reduced across ranks, and rank zero
alone writes one run folder."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.trainer.states import TrainerStatus

from mwvae import load_model
from mwvae.config import compose_config
from mwvae.data.loader import ClassPairedLoader, InMemoryLoader, distributed_shard
from mwvae.training import leave_process_group
from tests.subsets import SIZES, SUBSET

ROOT = Path(__file__).resolve().parents[1]
QUIET = [
    "callbacks.progress_bar.refresh_rate=0",
    f"paths.root_dir={ROOT}",
    "evaluation.likelihood.k=20",
    "evaluation.likelihood.num_samples=40",
    "evaluation.joint_samples=500",
]


def labels(batches) -> list[int]:
    return torch.cat([b["label"] for b in batches]).tolist()


def shards(world_size: int, size: int = 10, batch_size: int = 2, **kwargs) -> list[list]:
    tensors = {"image": torch.arange(size).float().view(size, 1), "label": torch.arange(size)}
    loaders = [
        InMemoryLoader(tensors, batch_size, rank=rank, world_size=world_size, **kwargs)
        for rank in range(world_size)
    ]
    for loader in loaders:
        assert len(list(loader)) == len(loader)
    return [list(loader) for loader in loaders]


@pytest.mark.parametrize("size", [12, 10])
def test_training_shards_cover_the_epoch_with_equal_step_counts(size):
    ranks = shards(3, size, shuffle=True, seed=4)
    assert len({len(batches) for batches in ranks}) == 1  # DDP steps all ranks together
    seen = sorted(sum((labels(batches) for batches in ranks), []))
    padding = -size % 3  # repeated examples that even out the shards
    assert len(seen) == size + padding and sorted(set(seen)) == list(range(size))
    for batches in ranks:
        for batch in batches:
            assert torch.equal(batch["image"].view(-1).long(), batch["label"])


def test_a_step_of_all_ranks_is_a_slice_of_the_single_process_order():
    single = labels(shards(1, 12, batch_size=6, shuffle=True, seed=4)[0])
    ranks = shards(3, 12, batch_size=2, shuffle=True, seed=4)
    for step in range(2):
        together = sorted(sum((ranks[r][step]["label"].tolist() for r in range(3)), []))
        assert together == sorted(single[step * 6 : (step + 1) * 6])


def test_evaluation_shards_partition_the_split_exactly():
    ranks = shards(3, 10, batch_size=4, equal_shards=False)
    assert sorted(sum((labels(batches) for batches in ranks), [])) == list(range(10))
    assert all(len(batches) >= 1 for batches in ranks)


def test_shards_follow_the_epoch_and_share_class_pairs():
    tensors = {"image": torch.arange(40).float(), "label": torch.arange(40) % 4}

    def epoch(world_size, rank, number):
        loader = ClassPairedLoader(
            tensors,
            8,
            source="image",
            pair_name="image2",
            class_key="label",
            shuffle=True,
            seed=1,
            rank=rank,
            world_size=world_size,
        )
        loader.sampler.set_epoch(number)
        batches = list(loader)
        return {
            int(i): int(p) for b in batches for i, p in zip(b["image"], b["image2"], strict=True)
        }

    for number in (0, 1):
        single = epoch(1, 0, number)
        assert epoch(2, 0, number) | epoch(2, 1, number) == single
    assert epoch(2, 0, 0) != epoch(2, 0, 1)


def test_loaders_are_sharded_only_for_a_running_distributed_trainer():
    def trainer(world_size, status):
        return SimpleNamespace(
            world_size=world_size, global_rank=1, state=SimpleNamespace(status=status)
        )

    assert distributed_shard(None, training=True) == {}
    assert distributed_shard(trainer(1, TrainerStatus.RUNNING), training=True) == {}
    # e.g. `evaluate` on rank zero after testing reads whole splits
    assert distributed_shard(trainer(2, TrainerStatus.FINISHED), training=True) == {}
    assert distributed_shard(trainer(2, TrainerStatus.RUNNING), training=False) == {
        "rank": 1,
        "world_size": 2,
        "equal_shards": False,
    }
    with pytest.raises(ValueError, match="cannot be shared"):
        shards(3, size=2)


def run_ddp(*overrides) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mwvae.train", "trainer=ddp", "trainer.devices=2"]
    return subprocess.run(
        [*command, "trainer.max_epochs=1", SUBSET, *QUIET, *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
        timeout=300,
    )


def test_ddp_cli_writes_one_timestamped_run_folder_from_rank_zero(tmp_path, mnist_dir):
    """Without hydra.run.dir, rank zero draws the ${now:...} folder and the
    other rank must write into the same one."""
    result = run_ddp("logger=csv", f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stderr + result.stdout

    # One folder, shared by both ranks (rank 1 logs to train_ddp_process_1.log there).
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert list(tmp_path.iterdir()) == [tmp_path / "runs"]
    assert (run_dir / "train_ddp_process_1.log").exists()

    # Rank zero's outputs, once.
    assert [p.relative_to(run_dir) for p in run_dir.rglob("metrics.json")] == [Path("metrics.json")]
    assert [p.relative_to(run_dir) for p in run_dir.rglob("metrics.csv")] == [
        Path("csv/metrics.csv")
    ]
    assert [p for p in (run_dir / "csv").iterdir() if p.is_dir()] == []  # no version_N
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("config.yaml")) == [
        Path(".hydra/config.yaml"),
        Path("config.yaml"),
    ]
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["epoch000.ckpt", "last.ckpt"]
    assert (run_dir / "figures" / "training_curves.png").stat().st_size > 0

    metrics = json.loads((run_dir / "metrics.json").read_text())
    tests = {k: v for k, v in metrics.items() if k.startswith("test/")}
    assert "test/loss" in tests and "test/loglik/joint" in tests
    assert all(math.isfinite(v) for v in tests.values())

    # The epoch's 2 batches of 128 were split between the 2 ranks: 1 step.
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == math.ceil(math.ceil(SIZES["train"] / 128) / 2)

    # The validation and test metrics cover the whole splits (reduced across
    # ranks): the deterministic ones equal a single process's.
    cfg = compose_config([*QUIET, SUBSET, f"paths.output_dir={tmp_path / 'check'}"])
    datamodule = instantiate(cfg.data, _recursive_=False)
    model = load_model(run_dir / "checkpoints" / "epoch000.ckpt")
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    single = trainer.validate(model, datamodule, verbose=False)[0]
    single |= trainer.test(model, datamodule, verbose=False)[0]
    for key in (
        "val/kl/image",
        "val/w2",
        "val/coherence/image_to_label",
        "test/kl/label",
        "test/w2",
    ):
        assert metrics[key] == pytest.approx(single[key], rel=1e-5), key


def test_every_rank_leaves_a_gloo_group_before_rank_zero_evaluates(tmp_path):
    """Lightning destroys only NCCL groups at exit; a rank exiting inside a
    gloo group can abort, and Lightning then kills rank zero too."""
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    barriers = []
    trainer = SimpleNamespace(strategy=SimpleNamespace(barrier=barriers.append))
    try:
        leave_process_group(trainer)
        assert not torch.distributed.is_initialized()
        assert barriers == ["leave_process_group"]  # no rank leaves while another still tests
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    leave_process_group(trainer)  # a single-process run has no group: nothing to do
    assert barriers == ["leave_process_group"]

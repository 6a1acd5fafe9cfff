"""InMemoryDataModule: the options every dataset has, their checks, and what
the base does for a dataset that declares only its modalities and splits."""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from pytorch_lightning.trainer.states import TrainerStatus

from mwvae.config import compose_config
from mwvae.data import InMemoryDataModule
from mwvae.data.missing import hidden_modalities, mask_key
from mwvae.data.module import ModalitySpec, Subset
from mwvae.options import OptionError, bounded

CONF_DATA = Path(__file__).resolve().parents[2] / "conf" / "data"


class Counting(InMemoryDataModule):
    """Examples 0..n-1 as `x` (their index) and `y` (its parity)."""

    MODALITIES = ("x", "y")
    class_key = "y"

    @dataclass
    class Options(InMemoryDataModule.Options):
        num_train: int = bounded(40, minimum=1)

    def read_splits(self):
        sizes = {"train": self.options.num_train, "val": 12, "test": 10}
        return {
            s: {"x": torch.arange(n).float(), "y": torch.arange(n) % 2} for s, n in sizes.items()
        }


def running_trainer(world_size: int = 1, rank: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        world_size=world_size,
        global_rank=rank,
        state=SimpleNamespace(status=TrainerStatus.RUNNING),
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
    )


def test_the_base_serves_the_splits_in_batches_seeded_by_seed_and_epoch():
    dm = Counting(batch_size=16, eval_batch_size=5, seed=3)
    dm.setup()
    train = dm.train_dataloader()
    batches = list(train)
    assert [len(b["x"]) for b in batches] == [16, 16, 8]
    order = torch.cat([b["x"] for b in batches]).long()
    assert sorted(order.tolist()) == list(range(40)) and order.tolist() != list(range(40))
    assert torch.equal(order, train.sampler.indices())
    again = Counting(batch_size=16, seed=3)
    again.setup()
    assert torch.equal(torch.cat([b["x"] for b in again.train_dataloader()]).long(), order)
    train.sampler.set_epoch(1)
    assert not torch.equal(torch.cat([b["x"] for b in train]).long(), order)  # another epoch
    val = torch.cat([b["x"] for b in dm.val_dataloader()])
    assert torch.equal(val, torch.arange(12).float())  # in order, eval_batch_size
    assert len(dm.test_dataloader()) == 2
    assert set(batches[0]) == {"x", "y"}  # complete data: no masks


def test_an_unset_seed_is_seed_zero():
    unset, zero = Counting(seed=None, paired_fraction=0.5), Counting(seed=0, paired_fraction=0.5)
    for dm in (unset, zero):
        dm.setup()
    assert unset.seed == 0
    assert all(
        torch.equal(unset.splits["train"][k], zero.splits["train"][k])
        for k in unset.splits["train"]
    )
    assert torch.equal(
        unset.train_dataloader().sampler.indices(), zero.train_dataloader().sampler.indices()
    )


def test_weak_supervision_masks_the_training_split_only():
    dm = Counting(paired_fraction=0.25, unpaired_keep="x", seed=5)
    dm.setup()
    expected = hidden_modalities(40, ("x", "y"), 0.25, "x", seed=5)
    assert set(expected) == {mask_key("x"), mask_key("y")}
    assert all(torch.equal(dm.splits["train"][k], v) for k, v in expected.items())
    assert int(dm.splits["train"][mask_key("y")].sum()) == 10
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"x", "y", mask_key("x"), mask_key("y")}
    for split in ("val", "test"):
        assert set(dm.splits[split]) == {"x", "y"}


def test_subsets_cut_every_split_that_its_reader_did_not():
    dm = Counting(subset={"train": 7, "test": 3})
    dm.setup()
    assert {s: len(t["x"]) for s, t in dm.splits.items()} == {"train": 7, "val": 12, "test": 3}
    assert torch.equal(dm.splits["train"]["x"], torch.arange(7).float())


def test_under_ddp_each_rank_gets_its_shard():
    shards = []
    for rank in (0, 1):
        dm = Counting(batch_size=100, seed=1)
        dm.setup()
        dm.trainer = running_trainer(world_size=2, rank=rank)
        (batch,) = dm.train_dataloader()
        (val,) = dm.val_dataloader()
        shards.append((batch["x"], val["x"]))
    assert len(shards[0][0]) == len(shards[1][0]) == 20
    assert sorted(torch.cat([s[0] for s in shards]).tolist()) == list(range(40))
    assert torch.equal(shards[1][1], torch.arange(1, 12, 2).float())  # evaluation: exact parts


def test_options_are_parsed_into_their_dataclasses():
    spec = {"encoder": {"_target_": "E"}, "decoder": {"_target_": "D"}, "likelihood": "gaussian"}
    dm = Counting(modalities={"x": spec}, subset={"train": 4})
    assert dm.options.modalities == {"x": ModalitySpec(**spec)}
    assert dm.options.subset == Subset(train=4)
    assert dm.options.num_train == 40 and dm.options.batch_size == 128  # the defaults


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batchsize": 3}, "data.batchsize: Counting has no option 'batchsize'; its options are"),
        ({"batch_size": 0}, "data.batch_size: must be >= 1, got 0"),
        ({"num_train": 0}, "data.num_train: must be >= 1, got 0"),
        ({"subset": {"trian": 3}}, "data.subset.trian: no such option; data.subset has"),
        ({"subset": {"train": 0}}, "data.subset.train: must be >= 1, got 0"),
        (
            {"modalities": {"z": {"likelihood": "bernoulli"}}},
            "data.modalities: Counting has no modality ['z']; it has",
        ),
        ({"modalities": {"x": {}}}, "data.modalities.x.likelihood: needs a value"),
        (
            {"modalities": {"x": {"likelihood": "poisson"}}},
            "data.modalities.x.likelihood: 'poisson' is not one of",
        ),
        ({"modalities": {"x": {"weigth": 2}}}, "data.modalities.x.weigth: no such option"),
        ({"paired_fraction": 2.0}, "data.paired_fraction: must be <= 1.0, got 2.0"),
        ({"unpaired_keep": "z"}, "data.unpaired_keep: 'z'; choose 'random' or one of ['x', 'y']"),
    ],
)
def test_a_bad_option_names_its_key(options, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        Counting(**options)
    with pytest.raises(OptionError, match=re.escape(message)):  # the config's check, unbuilt
        Counting.parse_options(options, "data")


# The configs of conf/data/: what the config layer does with them, without composing.


def own_values(name: str) -> tuple[dict, list[str]]:
    """A data config's own values (without `_target_`) and its defaults list, in
    order: `_self_`, the data configs it extends and its groups' choices
    (`{"text": "embedding"}` -> `text/embedding`)."""
    values = OmegaConf.to_container(OmegaConf.load(CONF_DATA / f"{name}.yaml"))
    defaults = values.pop("defaults", [])
    entries = [d if isinstance(d, str) else "/".join(*d.items()) for d in defaults]
    assert all(not d.startswith("/schema") for d in entries), "schemas are the Options now"
    return values, entries if "_self_" in entries else [*entries, "_self_"]


def composed(name: str) -> dict:
    values, entries = own_values(name)
    merged = OmegaConf.merge(*(values if e == "_self_" else composed(e) for e in entries))
    return OmegaConf.to_container(merged)


DATA_CONFIGS = sorted(path.stem for path in CONF_DATA.glob("*.yaml"))


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_a_data_config_holds_only_what_differs_from_its_options(name):
    values, _ = own_values(name)
    target = values.pop("_target_", None) or composed(name)["_target_"]
    defaults = dataclasses.asdict(get_class(target).Options())
    for key, value in values.items():
        assert key in defaults, f"{name}.yaml: {key} is no option of {target}"
        if key == "modalities" or (isinstance(value, str) and "${" in value):
            continue
        assert value != defaults[key], f"{name}.yaml restates the default of {key}"


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_a_data_config_merges_with_its_options_and_parses(name, tmp_path):
    data = composed(name)
    cls = get_class(data.pop("_target_"))
    schema = OmegaConf.structured(cls.Options)
    cfg = OmegaConf.create({"paths": {"data_dir": str(tmp_path)}, "seed": 7})
    cfg.data = OmegaConf.merge(schema, data)  # types and keys checked, defaults filled in
    values = OmegaConf.to_container(cfg.data, resolve=True)
    options = cls.parse_options(values, "data")
    assert options.seed == 7 and set(options.modalities) == set(cls.MODALITIES)
    assert all(
        spec.encoder["_target_"].startswith("mwvae.nets.") for spec in options.modalities.values()
    )
    if name == "coco_demo":  # its root names the defaults of its sizes
        assert options.root == f"{tmp_path}/coco_demo_4000_1000_0" and options.val_fraction == 0.1


def set_up_mnist(tmp_path, *overrides):
    subset = "data.subset={train:200,val:50,test:50}"
    cfg = compose_config([f"paths.output_dir={tmp_path}", subset, *overrides])
    instantiate(cfg.data, _recursive_=False).setup("fit")


def test_a_batch_larger_than_the_training_split_is_said(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        set_up_mnist(tmp_path, "data.batch_size=1000")
    assert "data.batch_size=1000 is larger than the 200 training examples" in caplog.text


def test_no_paired_example_is_said_and_the_defaults_are_quiet(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        set_up_mnist(tmp_path)
    assert "data." not in caplog.text
    with caplog.at_level(logging.WARNING):
        set_up_mnist(tmp_path, "data.paired_fraction=0")
    assert "data.paired_fraction=0: no training example has every modality" in caplog.text

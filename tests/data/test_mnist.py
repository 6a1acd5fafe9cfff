from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.trainer.states import TrainerStatus

from mwvae.data import MNIST3DataModule, MNISTDataModule
from mwvae.options import OptionError


def test_batches_are_image_label_dicts_from_the_cache(mnist_dir):
    datamodule = MNISTDataModule(
        data_dir=str(mnist_dir), subset={"train": 300, "val": 100, "test": 100}, batch_size=64
    )
    datamodule.prepare_data()
    assert datamodule.cache_path.exists()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (64, 1, 28, 28) and batch["image"].dtype == torch.float32
    assert batch["image"].min() >= 0.0 and batch["image"].max() <= 1.0
    assert batch["label"].dtype == torch.int64
    assert len(datamodule.train_dataloader()) == 5  # 300 examples in batches of 64
    assert len(datamodule.splits["val"]["label"]) == 100


def binarized(mnist_dir, mode, seed=0, module=MNISTDataModule):
    datamodule = module(
        data_dir=str(mnist_dir),
        binarize=mode,
        seed=seed,
        batch_size=100,
        subset={"train": 200, "val": 100, "test": 100},
    )
    datamodule.setup()
    return datamodule


def grey(mnist_dir):
    return binarized(mnist_dir, "none").splits


def train_epoch(datamodule, epoch, key="image"):
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(epoch)
    batches = list(loader)
    order = loader.sampler.indices()
    images = torch.cat([b[key] for b in batches])
    return images[torch.argsort(order)]  # back in the split's order


def test_threshold_and_fixed_binarize_every_split_once(mnist_dir):
    splits = grey(mnist_dir)
    threshold = binarized(mnist_dir, "threshold").splits
    assert torch.equal(threshold["train"]["image"], (splits["train"]["image"] > 0.5).float())
    fixed, again = binarized(mnist_dir, "fixed").splits, binarized(mnist_dir, "fixed").splits
    other_seed = binarized(mnist_dir, "fixed", seed=1).splits
    for split in ("train", "val", "test"):
        p, x = splits[split]["image"], fixed[split]["image"]
        assert set(x.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(x, again[split]["image"])  # seeded
        assert not torch.equal(x, other_seed[split]["image"])
        assert torch.all(x[p == 0] == 0) and torch.all(x[p == 1] == 1)  # certain pixels stay
        middle = (p > 0.3) & (p < 0.7)  # a Bernoulli of the grey level, not a threshold
        assert x[middle].mean().item() == pytest.approx(p[middle].mean().item(), abs=0.05)
    assert not torch.equal(fixed["val"]["image"], threshold["val"]["image"])


def test_dynamic_draws_the_training_images_each_epoch_and_evaluates_on_one_draw(mnist_dir):
    splits, dynamic = grey(mnist_dir), binarized(mnist_dir, "dynamic")
    assert torch.equal(dynamic.splits["train"]["image"], splits["train"]["image"])  # kept grey
    first, second = train_epoch(dynamic, 0), train_epoch(dynamic, 1)
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    assert torch.equal(first, train_epoch(binarized(mnist_dir, "dynamic"), 0))  # (seed, epoch)
    p = splits["train"]["image"]
    both = torch.stack([first, second, train_epoch(dynamic, 2), train_epoch(dynamic, 3)])
    middle = (p > 0.3) & (p < 0.7)
    assert both[:, middle].mean().item() == pytest.approx(p[middle].mean().item(), abs=0.03)
    fixed = binarized(mnist_dir, "fixed").splits
    for split in ("val", "test"):  # one seeded draw, the fixed mode's
        assert torch.equal(dynamic.splits[split]["image"], fixed[split]["image"])
        batch = next(
            iter(dynamic.val_dataloader() if split == "val" else dynamic.test_dataloader())
        )
        assert torch.equal(batch["image"], fixed[split]["image"][:100])


def test_dynamic_mnist3_pairs_the_partners_image_of_the_same_draw(mnist_dir):
    dynamic = binarized(mnist_dir, "dynamic", module=MNIST3DataModule)
    loader = dynamic.train_dataloader()
    loader.sampler.set_epoch(0)
    batch = next(iter(loader))
    assert set(batch["image2"].unique().tolist()) == {0.0, 1.0}
    drawn = loader.tensors["image"]  # this epoch's draw of every training image
    rows = [(drawn == row).flatten(1).all(1).nonzero() for row in batch["image2"]]
    assert all(len(found) >= 1 for found in rows)  # each partner image is one of the draw


def test_bad_arguments_fail_clearly(mnist_dir):
    with pytest.raises(OptionError, match=r"data.modalities: .* no modality \['caption'\]"):
        MNISTDataModule(data_dir=str(mnist_dir), modalities={"caption": {}})
    with pytest.raises(OptionError, match="data.source: 'kaggle' is not one of.*torchvision"):
        MNISTDataModule(data_dir=str(mnist_dir), source="kaggle")
    with pytest.raises(OptionError, match="data.data_dir: MNISTDataModule needs a value"):
        MNISTDataModule()


def running_trainer_on(device: str) -> SimpleNamespace:
    return SimpleNamespace(
        world_size=1,
        state=SimpleNamespace(status=TrainerStatus.RUNNING),
        strategy=SimpleNamespace(root_device=torch.device(device)),
    )


@pytest.mark.parametrize("on_device", [True, False])
def test_a_trainer_on_an_accelerator_gets_loaders_on_its_device(mnist_dir, on_device):
    datamodule = MNIST3DataModule(
        data_dir=str(mnist_dir), subset={"train": 100, "val": 50, "test": 50}, on_device=on_device
    )
    datamodule.setup()
    datamodule.trainer = running_trainer_on("meta")  # `meta` stands in for a GPU
    expected = "meta" if on_device else "cpu"
    for loader in (datamodule.train_dataloader(), datamodule.val_dataloader()):
        batch = next(iter(loader))
        assert {x.device.type for x in batch.values()} == {expected}
        assert set(batch) == {"image", "label", "image2"}
    assert datamodule.splits["train"]["image"].device.type == "cpu"  # copied, not moved

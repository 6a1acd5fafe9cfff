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


def test_binarize_gives_zeros_and_ones(mnist_dir):
    datamodule = MNISTDataModule(
        data_dir=str(mnist_dir), binarize=True, subset={"train": 50, "val": 10, "test": 10}
    )
    datamodule.setup()
    assert set(datamodule.splits["train"]["image"].unique().tolist()) == {0.0, 1.0}


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

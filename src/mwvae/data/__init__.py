"""Datasets as LightningDataModules whose batches are `dict[str, Tensor]`
(`InMemoryDataModule`, `mwvae.data.module`)."""

from mwvae.data.coco import COCODataModule
from mwvae.data.coco_demo_module import COCODemoDataModule
from mwvae.data.mnist import MNIST3DataModule, MNISTDataModule
from mwvae.data.module import InMemoryDataModule
from mwvae.data.polymnist import PolyMNISTDataModule

__all__ = [
    "COCODataModule",
    "COCODemoDataModule",
    "InMemoryDataModule",
    "MNIST3DataModule",
    "MNISTDataModule",
    "PolyMNISTDataModule",
]

"""Datasets as LightningDataModules whose batches are `dict[str, Tensor]`."""

from mwvae.data.coco import COCODataModule, COCODemoDataModule
from mwvae.data.mnist import MNIST3DataModule, MNISTDataModule

__all__ = ["COCODataModule", "COCODemoDataModule", "MNIST3DataModule", "MNISTDataModule"]

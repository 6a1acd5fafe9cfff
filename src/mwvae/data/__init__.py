"""Datasets as LightningDataModules whose batches are `dict[str, Tensor]`."""

from mwvae.data.mnist import MNIST3DataModule, MNISTDataModule

__all__ = ["MNIST3DataModule", "MNISTDataModule"]

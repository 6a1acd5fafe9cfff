"""Datasets as LightningDataModules whose batches are `dict[str, Tensor]`."""

from mwvae.data.mnist import MNISTDataModule

__all__ = ["MNISTDataModule"]

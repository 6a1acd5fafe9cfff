"""The data subset of every test that trains and evaluates on MNIST: the
same training images, so a fresh clone trains one digit classifier for all
of them (100 epochs of the CNN on a subset, ~10-20 s of a worker each)."""

SIZES = {"train": 256, "val": 128, "test": 128}
SUBSET = "data.subset={" + ",".join(f"{split}:{n}" for split, n in SIZES.items()) + "}"

"""The data subset of every test that trains and evaluates on MNIST: the
bench's tiny subset, so that a fresh clone trains one digit classifier for
all of them and the bench's tiny runs (100 epochs of the CNN on a subset,
~10-20 s of a worker each)."""

from experiments.bench.common import TINY_SIZES, TINY_SUBSET

SIZES = TINY_SIZES
SUBSET = f"data.subset={TINY_SUBSET}"

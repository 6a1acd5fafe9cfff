"""The benchmark suite: `python -m experiments.bench.run` (`make bench`)."""

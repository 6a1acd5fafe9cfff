"""Experiment scripts (run as files) and the benchmark suite, a package."""

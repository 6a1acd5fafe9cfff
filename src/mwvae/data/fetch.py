"""Fetch the offline MNIST archive at install time: `python -m mwvae.data.fetch`."""

from __future__ import annotations

import argparse
from pathlib import Path

from mwvae.data.mnist_source import fetch_offline_archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data/mnist"))
    args = parser.parse_args()
    print(f"MNIST archive ready: {fetch_offline_archive(args.data_dir)}")


if __name__ == "__main__":
    main()

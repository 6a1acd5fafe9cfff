import errno
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mwvae.data.cache as cache_module
from mwvae.data import MNISTDataModule
from mwvae.data.cache import (
    CorruptCacheError,
    cached_tensors,
    load_tensors,
    save_tensors,
    tensors_digest,
)
from mwvae.data.mnist_source import ARCHIVE_NAME


def tensors():
    return {"x": torch.arange(12, dtype=torch.float32).view(3, 4), "y": torch.tensor([1, 2, 3])}


def test_round_trip_keeps_values_and_metadata(tmp_path):
    path = tmp_path / "cache.safetensors"
    save_tensors(path, tensors(), {"source": "test"})
    loaded, metadata = load_tensors(path)
    torch.testing.assert_close(loaded["x"], tensors()["x"])
    assert metadata["source"] == "test"
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_cache_is_detected(tmp_path, damage):
    path = tmp_path / "cache.safetensors"
    save_tensors(path, tensors())
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 10]
    else:
        data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCacheError):
        load_tensors(path)


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path):
    path = tmp_path / "cache.safetensors"
    path.write_bytes(b"garbage")
    builds = []

    def build():
        builds.append(1)
        return tensors()

    with pytest.warns(UserWarning, match="rebuilding"):
        loaded = cached_tensors(path, build)
    torch.testing.assert_close(loaded["y"], tensors()["y"])
    cached_tensors(path, build)  # now valid: loaded, not rebuilt
    assert len(builds) == 1


def test_a_cache_with_other_keys_or_shapes_is_rebuilt(tmp_path):
    path = tmp_path / "cache.safetensors"
    layout = {"x": ((3, 4), torch.float32), "y": ((None,), torch.int64)}
    save_tensors(path, {"x": torch.zeros(2, 4), "y": torch.tensor([1])})  # valid, wrong shape
    with pytest.warns(UserWarning, match=r"'x' as torch.float32 \(2, 4\).*rebuilding"):
        loaded = cached_tensors(path, tensors, layout=layout)
    torch.testing.assert_close(loaded["x"], tensors()["x"])
    save_tensors(path, {"z": torch.zeros(1)})
    with pytest.warns(UserWarning, match="keys.*rebuilding"):
        cached_tensors(path, tensors, layout=layout)
    assert load_tensors(path)[0].keys() == {"x", "y"}


def test_a_build_that_does_not_fit_the_layout_is_an_error_not_a_cache(tmp_path):
    path = tmp_path / "cache.safetensors"
    with pytest.raises(RuntimeError, match="do not fit"):
        cached_tensors(path, tensors, layout={"x": ((3, 4), torch.float32)})
    assert not path.exists()


class RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_at_a_cache_path_is_never_unpickled(tmp_path, writer):
    path, marker = tmp_path / "cache.safetensors", tmp_path / "pwned"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(RunsAShellCommand(marker)))
    else:
        torch.save({"x": RunsAShellCommand(marker)}, path)
    with pytest.warns(UserWarning, match="unreadable.*rebuilding"):
        loaded = cached_tensors(path, tensors)
    assert not marker.exists()
    torch.testing.assert_close(loaded["x"], tensors()["x"])
    assert load_tensors(path)[0].keys() == {"x", "y"}


def test_a_failed_write_keeps_the_old_cache_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "cache.safetensors"
    save_tensors(path, tensors())
    before = path.read_bytes()

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a fi")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_tensors(path, {"x": torch.ones(3)})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.safetensors"]


def test_a_dead_jobs_temporary_file_is_removed_when_the_cache_is_built(tmp_path):
    path = tmp_path / "cache.safetensors"
    (tmp_path / ".cache.safetensors.12345.tmp").write_bytes(b"half a fi")
    cached_tensors(path, tensors)
    assert not list(tmp_path.glob(".*.tmp"))


# Each process waits until all are ready, then asks for the same cache; the
# build is slow and leaves a file per run, and the process prints a digest.
# The worker loads cache.py by its path: importing the `mwvae.data` package
# would import Lightning, seconds per process.
WORKER = """
import importlib.util, os, sys, time
from pathlib import Path
import torch
spec = importlib.util.spec_from_file_location("cache", sys.argv[5])
cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache)
cached_tensors, tensors_digest = cache.cached_tensors, cache.tensors_digest

path, ready, builds, n = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
(ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < n:
    time.sleep(0.01)

def build():
    (builds / str(os.getpid())).touch()
    time.sleep(0.5)
    return {"x": torch.arange(100_000, dtype=torch.float32), "y": torch.eye(7)}

print(tensors_digest(cached_tensors(path, build)))
"""


def test_parallel_jobs_build_a_cache_once_and_all_get_the_same_tensors(tmp_path):
    n = 4
    path, ready, builds = tmp_path / "cache.safetensors", tmp_path / "ready", tmp_path / "builds"
    ready.mkdir()
    builds.mkdir()
    args = [str(path), str(ready), str(builds), str(n), cache_module.__file__]
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(n)
    ]
    outputs = [job.communicate(timeout=120) for job in jobs]
    assert [job.returncode for job in jobs] == [0] * n, [err.decode() for _, err in outputs]
    digests = {out.decode().strip() for out, _ in outputs}
    assert len(list(builds.iterdir())) == 1  # the lock serialised them; the others loaded
    assert digests == {tensors_digest(load_tensors(path)[0])}  # one valid cache, same tensors
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture
def mnist_copy(tmp_path, mnist_dir):
    """A data directory with (a link to) the offline archive and no cache yet."""
    (tmp_path / ARCHIVE_NAME).symlink_to(mnist_dir / ARCHIVE_NAME)
    return tmp_path


def test_a_truncated_mnist_cache_is_rebuilt_with_a_warning(mnist_copy):
    first = MNISTDataModule(data_dir=str(mnist_copy))
    first.setup()
    cache = first.cache_path
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    again = MNISTDataModule(data_dir=str(mnist_copy))
    with pytest.warns(UserWarning, match="mnist_offline.safetensors is unreadable.*rebuilding"):
        again.setup()
    for split in ("train", "test"):
        assert torch.equal(again.splits[split]["image"], first.splits[split]["image"])
        assert torch.equal(again.splits[split]["label"], first.splits[split]["label"])
    load_tensors(cache)  # whole again

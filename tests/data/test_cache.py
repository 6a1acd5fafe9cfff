import pytest
import torch

from mwvae.data.cache import CorruptCacheError, cached_tensors, load_tensors, save_tensors


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

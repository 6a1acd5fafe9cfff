"""COCODataModule on tiny generated COCO-format folders."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.trainer.states import TrainerStatus

import mwvae.data.captions as captions_module
from mwvae.data.cache import save_tensors
from mwvae.data.captions import CaptionEmbedder
from mwvae.data.coco import (
    COCODataModule,
    COCODemoDataModule,
    cached_caption_embeddings,
    embedding_cache_key,
)
from mwvae.data.coco_demo import generate_coco_demo
from mwvae.data.coco_source import load_image, read_annotations
from mwvae.data.mnist_source import DatasetMissingError


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return generate_coco_demo(tmp_path_factory.mktemp("coco") / "root", num_train=24, num_val=8)


@pytest.fixture(scope="module")
def embedder():
    return CaptionEmbedder()


def datamodule(root, cache_dir, **kwargs) -> COCODataModule:
    settings = {"standardize": False, "val_fraction": 0.25, "batch_size": 5, **kwargs}
    dm = COCODataModule(str(root), str(cache_dir), **settings)
    dm.prepare_data()
    dm.setup()
    return dm


def own_caption_embeddings(root, folder, embedder) -> dict[bytes, torch.Tensor]:
    """Each image's pixels (as decoded independently) -> its captions'
    embeddings, computed caption by caption."""
    annotations = read_annotations(root / "annotations" / f"captions_{folder}.json")
    texts = [text for captions in annotations.captions for text in captions]
    embeddings = embedder.embed(texts, progress=False).split(
        [len(captions) for captions in annotations.captions]
    )
    return {
        load_image(root / folder / name, 32).tobytes(): own
        for name, own in zip(annotations.file_names, embeddings, strict=True)
    }


def assert_paired_with_own_caption(batch, own: dict[bytes, torch.Tensor]) -> list[int]:
    """Every caption in the batch is one of its own image's captions; returns which."""
    chosen = []
    for image, caption in zip(batch["image"], batch["caption"], strict=True):
        pixels = (image * 255).round().to(torch.uint8).numpy().tobytes()
        distances = (own[pixels] - caption).abs().amax(1)
        assert distances.min() < 1e-4, "a caption embedding of another image"
        chosen.append(int(distances.argmin()))
    return chosen


@pytest.mark.parametrize("choice", ["first", "random", "all"])
def test_batches_pair_each_image_with_one_of_its_own_captions(
    coco_root, tmp_path, embedder, choice
):
    dm = datamodule(coco_root, tmp_path, caption=choice)
    own = own_caption_embeddings(coco_root, "train2017", embedder)
    loader = dm.train_dataloader()
    chosen = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        chosen += [i for batch in loader for i in assert_paired_with_own_caption(batch, own)]
    n_images = len(dm.captioned["train"].images)
    if choice == "first":
        assert set(chosen) == {0}
    elif choice == "random":
        assert len(chosen) == 2 * n_images and len(set(chosen)) > 1
    else:
        assert len(chosen) == 2 * len(dm.captioned["train"].owner)  # every pair, each epoch
    test_own = own_caption_embeddings(coco_root, "val2017", embedder)
    for batch in dm.test_dataloader():
        assert set(assert_paired_with_own_caption(batch, test_own)) == {0}


def test_splits_hold_out_validation_images_and_test_on_val2017(coco_root, tmp_path):
    dm = datamodule(coco_root, tmp_path)
    sizes = {name: len(split.images) for name, split in dm.captioned.items()}
    assert sizes == {"train": 18, "val": 6, "test": 8}
    assert all(len(split.owner) == 5 * len(split.images) for split in dm.captioned.values())
    train, val = (dm.captioned[s].images.flatten(1) for s in ("train", "val"))
    assert torch.cdist(val, train).amin() > 0  # no image in both


def test_standardized_captions_have_zero_mean_unit_std_on_train(coco_root, tmp_path):
    raw = datamodule(coco_root, tmp_path).captioned["train"].captions
    captions = datamodule(coco_root, tmp_path, standardize=True).captioned["train"].captions
    varying = raw.std(0) > 1e-6  # MiniLM has a few dead dimensions (|x| ~ 1e-32)
    assert varying.sum() > 300
    torch.testing.assert_close(captions.mean(0), torch.zeros(captions.shape[1]), atol=1e-4, rtol=0)
    std = captions.std(0)
    torch.testing.assert_close(std[varying], torch.ones(int(varying.sum())), atol=1e-3, rtol=0)
    assert std[~varying].max() < 1e-6


class LoadCounter:
    def __init__(self, monkeypatch):
        self.calls = 0
        original = captions_module.load_language_model

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(captions_module, "load_language_model", counted)


def test_embedding_cache_is_reused_and_invalidated(coco_root, tmp_path, monkeypatch):
    loads = LoadCounter(monkeypatch)
    first = datamodule(coco_root, tmp_path)
    assert loads.calls == 1  # one embedder serves both annotation files
    again = datamodule(coco_root, tmp_path)
    assert loads.calls == 1  # the cache, not the language model
    torch.testing.assert_close(first.captioned["test"].captions, again.captioned["test"].captions)
    datamodule(coco_root, tmp_path, embedding={"pooling": "cls"})
    assert loads.calls == 2
    datamodule(coco_root, tmp_path, embedding={"max_length": 16})
    assert loads.calls == 3
    base = {"model": "all-MiniLM-L6-v2", "pooling": "mean", "max_length": 128}
    assert embedding_cache_key("abc", base) != embedding_cache_key(
        "abc", {**base, "model": "bert-base-uncased"}
    )
    assert embedding_cache_key("abc", base) != embedding_cache_key("abd", base)


def test_a_changed_annotation_file_is_embedded_again(coco_root, tmp_path, monkeypatch):
    root = tmp_path / "copy"
    generate_coco_demo(root, num_train=24, num_val=8)
    loads = LoadCounter(monkeypatch)
    datamodule(root, tmp_path / "cache")
    path = root / "annotations" / "captions_val2017.json"
    content = json.loads(path.read_text())
    content["annotations"][0]["caption"] = "a completely different caption"
    path.write_text(json.dumps(content))
    dm = datamodule(root, tmp_path / "cache")
    assert loads.calls == 2
    assert "a completely different caption" in dm.captioned["test"].texts


def test_broken_images_and_malformed_entries_are_skipped_and_counted(tmp_path, caplog):
    root = generate_coco_demo(tmp_path / "root", num_train=24, num_val=8)
    path = root / "annotations" / "captions_val2017.json"
    content = json.loads(path.read_text())
    names = [entry["file_name"] for entry in content["images"]]
    (root / "val2017" / names[0]).write_bytes(b"not a jpeg")
    (root / "val2017" / names[1]).unlink()
    content["annotations"][0].pop("caption")
    content["annotations"][1]["image_id"] = 10**9  # no such image
    content["annotations"].append({"id": 1, "image_id": "x"})
    path.write_text(json.dumps(content))
    with caplog.at_level(logging.WARNING):
        dm = datamodule(root, tmp_path / "cache")
    assert len(dm.captioned["test"].images) == 6
    readable = {entry["id"] for entry in content["images"][2:]}
    expected = sum("caption" in a and a.get("image_id") in readable for a in content["annotations"])
    assert len(dm.captioned["test"].owner) == len(dm.captioned["test"].texts) == expected
    assert "skipped 3 malformed" in caplog.text
    assert "skipped 2 unreadable image files" in caplog.text


def test_a_missing_root_explains_what_to_download(tmp_path):
    dm = COCODataModule(str(tmp_path / "nowhere"), str(tmp_path / "cache"))
    with pytest.raises(DatasetMissingError, match="annotations_trainval2017.zip") as error:
        dm.prepare_data()
    assert "nowhere" in str(error.value) and "coco_demo" in str(error.value)


def test_demo_datamodule_generates_its_dataset_once(tmp_path):
    root = tmp_path / "demo"
    dm = COCODemoDataModule(
        str(root), str(tmp_path / "cache"), num_train=20, num_val=10, val_fraction=0.5
    )
    dm.prepare_data()
    dm.setup()
    assert len(dm.captioned["test"].images) == 10
    stamp = (root / "annotations" / "captions_train2017.json").stat().st_mtime_ns
    COCODemoDataModule(str(root), str(tmp_path / "cache"), num_train=20, num_val=10).setup()
    assert (root / "annotations" / "captions_train2017.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("choice", ["random", "all"])
def test_a_trainer_on_an_accelerator_gets_batches_on_its_device(coco_root, tmp_path, choice):
    dm = datamodule(coco_root, tmp_path, caption=choice)
    on_the_host = list(dm.train_dataloader())
    dm.trainer = SimpleNamespace(  # a running Trainer; `meta` stands in for a GPU
        world_size=1,
        state=SimpleNamespace(status=TrainerStatus.RUNNING),
        strategy=SimpleNamespace(root_device=torch.device("meta")),
    )
    batches = list(dm.train_dataloader())
    assert len(batches) == len(on_the_host)
    for batch, same in zip(batches, on_the_host, strict=True):
        assert {x.device.type for x in batch.values()} == {"meta"}
        assert {m: x.shape for m, x in batch.items()} == {m: x.shape for m, x in same.items()}


class FakeEmbedder:
    """A quick stand-in for the language model: a few numbers per caption."""

    def __init__(self):
        self.calls = 0

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.calls += 1
        return torch.tensor([[len(t), t.count(" "), sum(map(ord, t)) % 97] for t in texts]).float()


def caption_cache(coco_root, cache_dir, embed):
    path = coco_root / "annotations" / "captions_val2017.json"
    settings = {"model": "fake", "pooling": "mean", "max_length": 8}
    embeddings = cached_caption_embeddings(path, read_annotations(path), settings, cache_dir, embed)
    (cache,) = cache_dir.glob("coco_captions_*.safetensors")
    return embeddings, cache


def test_a_truncated_caption_cache_is_embedded_again_with_a_warning(coco_root, tmp_path):
    embed = FakeEmbedder()
    first, cache = caption_cache(coco_root, tmp_path, embed)
    cache.write_bytes(cache.read_bytes()[:-7])
    with pytest.warns(UserWarning, match="unreadable.*rebuilding"):
        again, _ = caption_cache(coco_root, tmp_path, embed)
    assert embed.calls == 2
    torch.testing.assert_close(again, first)
    caption_cache(coco_root, tmp_path, embed)
    assert embed.calls == 2  # whole again: loaded


def test_a_caption_cache_with_the_wrong_number_of_rows_is_embedded_again(coco_root, tmp_path):
    embed = FakeEmbedder()
    first, cache = caption_cache(coco_root, tmp_path, embed)
    save_tensors(cache, {"embeddings": first[:-1]})  # internally consistent, one row short
    with pytest.warns(
        UserWarning,
        match=rf"\({len(first) - 1}, 3\), not torch.float32 \({len(first)}, \*\).*rebuilding",
    ):
        again, _ = caption_cache(coco_root, tmp_path, embed)
    assert embed.calls == 2
    torch.testing.assert_close(again, first)

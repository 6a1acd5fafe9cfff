"""COCODataModule on tiny generated COCO-format folders."""

from __future__ import annotations

import json
import logging
import re
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.trainer.states import TrainerStatus

import mwvae.data.captions as captions_module
from mwvae.data import COCODataModule, COCODemoDataModule
from mwvae.data.cache import save_tensors
from mwvae.data.caption_cache import cached_caption_embeddings, embedding_cache_key
from mwvae.data.captions import CaptionEmbedder
from mwvae.data.coco_demo import generate_coco_demo
from mwvae.data.coco_source import load_image, read_annotations
from mwvae.data.missing import mask_key
from mwvae.data.mnist_source import DatasetMissingError
from mwvae.options import OptionError


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return generate_coco_demo(tmp_path_factory.mktemp("coco") / "root", num_train=24, num_val=8)


@pytest.fixture(scope="module")
def coco_cache(tmp_path_factory):
    """A cache shared by the tests that only read `coco_root`: embedded once."""
    return tmp_path_factory.mktemp("coco_cache")


@pytest.fixture(scope="module")
def embedder():
    return CaptionEmbedder()


def datamodule(root, cache_dir, **kwargs) -> COCODataModule:
    settings = {"standardize": False, "val_fraction": 0.25, "batch_size": 5, **kwargs}
    dm = COCODataModule(root=str(root), cache_dir=str(cache_dir), **settings)
    dm.prepare_data()
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def own_captions(coco_root, embedder) -> dict[str, dict[bytes, torch.Tensor]]:
    """Per folder, each image's pixels (as decoded independently) -> its
    captions' embeddings, computed caption by caption."""
    own = {}
    for folder in ("train2017", "val2017"):
        annotations = read_annotations(coco_root / "annotations" / f"captions_{folder}.json")
        texts = [text for captions in annotations.captions for text in captions]
        embeddings = embedder.embed(texts, progress=False).split(
            [len(captions) for captions in annotations.captions]
        )
        own[folder] = {
            load_image(coco_root / folder / name, 32).tobytes(): mine
            for name, mine in zip(annotations.file_names, embeddings, strict=True)
        }
    return own


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
    coco_root, coco_cache, own_captions, choice
):
    dm = datamodule(coco_root, coco_cache, caption=choice)
    own = own_captions["train2017"]
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
    test_own = own_captions["val2017"]
    for batch in dm.test_dataloader():
        assert set(assert_paired_with_own_caption(batch, test_own)) == {0}


def test_splits_hold_out_validation_images_and_test_on_val2017(coco_root, coco_cache):
    dm = datamodule(coco_root, coco_cache)
    sizes = {name: len(split.images) for name, split in dm.captioned.items()}
    assert sizes == {"train": 18, "val": 6, "test": 8}
    assert all(len(split.owner) == 5 * len(split.images) for split in dm.captioned.values())
    train, val = (dm.captioned[s].images.flatten(1) for s in ("train", "val"))
    assert torch.cdist(val, train).amin() > 0  # no image in both


def test_standardized_captions_have_zero_mean_unit_std_on_train(coco_root, coco_cache):
    raw = datamodule(coco_root, coco_cache).captioned["train"].captions
    captions = datamodule(coco_root, coco_cache, standardize=True).captioned["train"].captions
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
    dm = COCODataModule(root=str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DatasetMissingError, match="annotations_trainval2017.zip") as error:
        dm.prepare_data()
    assert "nowhere" in str(error.value) and "coco_demo" in str(error.value)


def test_demo_datamodule_generates_its_dataset_once(tmp_path):
    root = tmp_path / "demo"
    dm = COCODemoDataModule(
        root=str(root),
        cache_dir=str(tmp_path / "cache"),
        num_train=20,
        num_val=10,
        val_fraction=0.5,
    )
    dm.prepare_data()
    dm.setup()
    assert len(dm.captioned["test"].images) == 10
    stamp = (root / "annotations" / "captions_train2017.json").stat().st_mtime_ns
    COCODemoDataModule(
        root=str(root), cache_dir=str(tmp_path / "cache"), num_train=20, num_val=10
    ).setup()
    assert (root / "annotations" / "captions_train2017.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("choice", ["random", "all"])
def test_a_trainer_on_an_accelerator_gets_batches_on_its_device(coco_root, coco_cache, choice):
    dm = datamodule(coco_root, coco_cache, caption=choice)
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


# Weak supervision: images without captions, and modalities hidden by `paired_fraction`.

MASKS = (mask_key("image"), mask_key("caption"))


@pytest.fixture(scope="module")
def uncaptioned_root(tmp_path_factory):
    """4 of 24 training images without captions, and one test (val2017) image too."""
    root = generate_coco_demo(
        tmp_path_factory.mktemp("coco") / "root", num_train=24, num_val=8, num_uncaptioned=4
    )
    path = root / "annotations" / "captions_val2017.json"
    content = json.loads(path.read_text())
    stripped = content["images"][0]["id"]
    content["annotations"] = [a for a in content["annotations"] if a["image_id"] != stripped]
    path.write_text(json.dumps(content))
    return root


@pytest.fixture(scope="module")
def uncaptioned_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("uncaptioned_cache")


def uncaptioned_pixels(root) -> set[bytes]:
    """The pixels (as decoded independently) of every image without captions."""
    pixels = set()
    for folder in ("train2017", "val2017"):
        annotations = read_annotations(root / "annotations" / f"captions_{folder}.json")
        for name, captions in zip(annotations.file_names, annotations.captions, strict=True):
            if not captions:
                pixels.add(load_image(root / folder / name, 32).tobytes())
    return pixels


def pixel_bytes(image: torch.Tensor) -> bytes:
    return (image * 255).round().to(torch.uint8).numpy().tobytes()


def test_read_annotations_keeps_images_without_captions(uncaptioned_root):
    annotations = read_annotations(uncaptioned_root / "annotations" / "captions_train2017.json")
    assert len(annotations.image_ids) == 24 and annotations.num_uncaptioned == 4
    assert annotations.image_ids == sorted(annotations.image_ids)
    captioned = annotations.captioned_only()
    assert len(captioned.image_ids) == 20 and captioned.num_uncaptioned == 0
    assert captioned.captions == [c for c in annotations.captions if c]


@pytest.mark.parametrize("choice", ["first", "random", "all"])
def test_images_without_captions_train_with_the_caption_hidden_and_are_never_evaluated(
    uncaptioned_root, uncaptioned_cache, choice
):
    dm = datamodule(uncaptioned_root, uncaptioned_cache, caption=choice, standardize=True)
    captionless = uncaptioned_pixels(uncaptioned_root)
    assert len(captionless) == 5
    train = dm.captioned["train"]
    # Validation holds out round(0.25 * 20) captioned images; every captionless one trains.
    assert (len(train.images), int((~train.has_caption).sum())) == (19, 4)
    assert len(dm.captioned["val"].images) == 5 and len(dm.captioned["test"].images) == 7
    row_of = {pixel_bytes(image): row for row, image in enumerate(train.images)}
    loader = dm.train_dataloader()
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        seen = 0
        for batch in loader:
            assert set(batch) == {"image", "caption", *MASKS}
            assert batch[mask_key("image")].all()  # no image is hidden here
            for image, caption, observed in zip(
                batch["image"], batch["caption"], batch[mask_key("caption")], strict=True
            ):
                pixels = pixel_bytes(image)
                assert bool(observed) == (pixels not in captionless)
                if observed:  # one of its own captions
                    own = train.captions[train.owner == row_of[pixels]]
                    assert (own - caption).abs().amax(1).min() < 1e-5
                else:  # the placeholder
                    assert not caption.any()
                    seen += 1
        assert seen == 4  # each captionless image once per epoch, also with `all`
    assert (~dm.splits["train"][mask_key("caption")]).sum() == 4
    for split in ("val", "test"):
        assert dm.captioned[split].has_caption.all()
        for batch in dm.loader(split, 3, shuffle=False):
            assert set(batch) == {"image", "caption"}
            assert not {pixel_bytes(image) for image in batch["image"]} & captionless


def test_captions_stay_consistent_when_some_images_have_none(uncaptioned_root, uncaptioned_cache):
    raw = datamodule(uncaptioned_root, uncaptioned_cache)
    dm = datamodule(uncaptioned_root, uncaptioned_cache, standardize=True)
    train = dm.captioned["train"]
    assert len(train.captions) == len(train.owner) == len(train.texts) == 5 * 15
    assert train.texts == raw.captioned["train"].texts
    # Standardised with the real captions alone: mean 0 over them.
    torch.testing.assert_close(
        train.captions.mean(0), torch.zeros(train.captions.shape[1]), atol=1e-4, rtol=0
    )
    missing = ~train.has_caption
    assert torch.equal(train.first_caption[missing], torch.full((4,), train.placeholder_row))
    first = train.first_caption[~missing]
    assert torch.equal(train.owner[first], (~missing).nonzero().squeeze(1))
    assert [train.texts[r] for r in first] == [
        raw.captioned["train"].texts[r] for r in raw.captioned["train"].first_caption[~missing]
    ]
    caption = dm.splits["train"]["caption"]
    assert not caption[missing].any()
    torch.testing.assert_close(caption[~missing], train.captions[first])


def test_paired_fraction_hides_a_seeded_share_of_training_examples(coco_root, coco_cache):
    def masks(choice, seed=0, **hiding):
        dm = datamodule(coco_root, coco_cache, caption=choice, seed=seed, **hiding)
        loader = dm.train_dataloader()
        for split in ("val", "test"):  # evaluation stays complete
            assert set(dm.loader(split, 4, shuffle=False).tensors) == {
                "image_row",
                "caption_row",
            }
        batches = list(loader)
        in_batches = {k: torch.cat([b[k] for b in batches]) for k in MASKS}
        order = loader.sampler.indices()
        assert all(torch.equal(in_batches[k], loader.tensors[k][order]) for k in MASKS)
        return torch.stack([loader.tensors[k] for k in MASKS])

    for choice, examples in [("first", 18), ("random", 18), ("all", 90)]:
        image, caption = masks(choice, paired_fraction=0.25)
        assert len(image) == examples
        assert int((image & caption).sum()) == round(0.25 * examples)
        assert (image | caption).all()  # an unpaired example keeps one modality
        assert int((image ^ caption).sum()) == examples - round(0.25 * examples)
    first = masks("first", paired_fraction=0.25)
    assert torch.equal(first, masks("random", paired_fraction=0.25))  # the same examples
    assert not torch.equal(first, masks("first", seed=1, paired_fraction=0.25))
    image, caption = masks("first", paired_fraction=0.25, unpaired_keep="caption")
    assert caption.all() and int(image.sum()) == round(0.25 * 18)
    plain = datamodule(coco_root, coco_cache).train_dataloader()
    assert set(next(iter(plain))) == {"image", "caption"}  # complete data: no masks


def test_a_captionless_example_keeps_its_image_whatever_the_draw(
    uncaptioned_root, uncaptioned_cache
):
    dm = datamodule(
        uncaptioned_root,
        uncaptioned_cache,
        caption="all",
        paired_fraction=0.0,
        unpaired_keep="caption",
    )
    loader = dm.train_dataloader()
    image, caption = (loader.tensors[k] for k in MASKS)
    has_caption = loader.tensors["caption_row"] != dm.captioned["train"].placeholder_row
    assert int((~has_caption).sum()) == 4 and len(has_caption) == 5 * 15 + 4
    assert torch.equal(caption, has_caption) and torch.equal(image, ~has_caption)


@pytest.mark.parametrize("choice", ["first", "random", "all"])
def test_masks_and_captions_survive_a_resume(uncaptioned_root, uncaptioned_cache, choice):
    def loader():
        dm = datamodule(uncaptioned_root, uncaptioned_cache, caption=choice, paired_fraction=0.5)
        return dm.train_dataloader()

    interrupted = loader()
    interrupted.sampler.set_epoch(3)
    batches = iter(interrupted)
    next(batches), next(batches)
    state = interrupted.state_dict()
    rest = list(batches)
    resumed = loader()
    resumed.load_state_dict(state)
    again = list(resumed)
    assert len(again) == len(rest) == len(interrupted) - 2
    for batch, same in zip(again, rest, strict=True):
        assert set(batch) == {"image", "caption", *MASKS}
        assert all(torch.equal(batch[k], same[k]) for k in batch)
    hidden = torch.cat([~b[mask_key("image")] | ~b[mask_key("caption")] for b in again])
    assert hidden.any()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"paired_fraction": 1.5}, "data.paired_fraction: must be <= 1.0"),
        ({"unpaired_keep": "label"}, "data.unpaired_keep: 'label'; choose 'random' or one of"),
        ({"caption": "second"}, "data.caption: 'second' is not one of ['first', 'random', 'all']"),
        ({"embedding": {"pooling": "max"}}, "data.embedding.pooling: 'max' is not one of"),
        ({"embedding": {"pooling_": "cls"}}, "data.embedding.pooling_: no such option"),
        ({"val_fraction": 1.0}, "data.val_fraction: must be between 0 and 1, got 1.0"),
        ({"modalities": {"label": {}}}, "data.modalities: COCODataModule has no modality"),
    ],
)
def test_bad_options_name_their_key(tmp_path, options, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        COCODataModule(root=str(tmp_path), cache_dir=str(tmp_path), **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_uncaptioned": 30}, "data.num_uncaptioned: must be within [0, num_train=20], got 30"),
        ({"num_val": -1}, "data.num_val: must be >= 0, got -1"),
    ],
)
def test_bad_demo_sizes_fail_before_anything_is_generated(tmp_path, options, message):
    settings = {"root": str(tmp_path / "demo"), "cache_dir": str(tmp_path), "num_train": 20}
    with pytest.raises(OptionError, match=re.escape(message)):
        COCODemoDataModule.parse_options({**settings, **options}, "data")
    assert not (tmp_path / "demo").exists()


def test_masks_go_to_the_accelerator_with_the_batches(uncaptioned_root, uncaptioned_cache):
    dm = datamodule(uncaptioned_root, uncaptioned_cache, caption="random", paired_fraction=0.5)
    dm.trainer = SimpleNamespace(  # a running Trainer; `meta` stands in for a GPU
        world_size=1,
        state=SimpleNamespace(status=TrainerStatus.RUNNING),
        strategy=SimpleNamespace(root_device=torch.device("meta")),
    )
    batches = list(dm.train_dataloader())
    assert batches and all(set(batch) == {"image", "caption", *MASKS} for batch in batches)
    assert {x.device.type for batch in batches for x in batch.values()} == {"meta"}


def test_demo_datamodule_passes_on_its_uncaptioned_images(tmp_path):
    dm = COCODemoDataModule(
        root=str(tmp_path / "demo"),
        cache_dir=str(tmp_path / "cache"),
        num_train=20,
        num_val=10,
        num_uncaptioned=3,
        val_fraction=0.5,
    )
    dm.prepare_data()
    dm.setup()
    train = dm.captioned["train"]
    assert int((~train.has_caption).sum()) == 3 and len(train.images) == 3 + 17 - round(0.5 * 17)

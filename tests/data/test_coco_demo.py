"""The synthetic COCO-format dataset: official layout, determinism, and captions that really
describe their images (checked against the pixels, with colour rules independent of the
generator's palette)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mwvae.data.coco_demo as coco_demo
from mwvae.data.coco_demo import generate_coco_demo, main

SPLITS = ("train2017", "val2017")
IMAGE_KEYS = {"id", "file_name", "height", "width", "license", "coco_url", "date_captured"}
IMAGE_KEYS |= {"flickr_url"}

# What a person calls each colour, as hue ranges in degrees (independent of the generator).
HUE_RANGES = {
    "red": [(345, 360), (0, 15)],
    "orange": [(15, 45)],
    "yellow": [(45, 75)],
    "green": [(75, 160)],
    "cyan": [(160, 200)],
    "blue": [(200, 260)],
    "purple": [(260, 345)],
}
COLOUR_WORD = re.compile(r"\b(" + "|".join(HUE_RANGES) + r")\b")
SMALL_WORDS = {"small", "little", "tiny"}
LARGE_WORDS = {"large", "big", "huge"}
SHAPE_WORDS = {
    "circle": {"circle", "disc", "round"},
    "square": {"square", "box", "block"},
    "triangle": {"triangle", "triangular"},
    "star": {"star"},
    "cross": {"cross", "plus"},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_coco_demo(
        tmp_path_factory.mktemp("coco") / "demo", num_train=20, num_val=10, seed=3
    )


def load(root: Path, split: str) -> dict:
    return json.loads((root / "annotations" / f"captions_{split}.json").read_text())


def captions_by_image(content: dict) -> dict[int, list[str]]:
    captions: dict[int, list[str]] = {image["id"]: [] for image in content["images"]}
    for annotation in content["annotations"]:
        captions[annotation["image_id"]].append(annotation["caption"])
    return captions


def each_image(root: Path):
    """(RGB array, image entry, its captions) for every image of both splits."""
    for split in SPLITS:
        content = load(root, split)
        captions = captions_by_image(content)
        for image in content["images"]:
            pixels = np.asarray(Image.open(root / split / image["file_name"]).convert("RGB"))
            yield pixels, image, captions[image["id"]]


def colour_masks(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean mask per colour name of the vivid pixels; backgrounds (white, black, gray) have
    no saturation, so they belong to none."""
    hsv = np.asarray(Image.fromarray(pixels).convert("HSV"), dtype=float)
    hue, saturation, value = hsv[..., 0] * 360 / 256, hsv[..., 1] / 255, hsv[..., 2] / 255
    vivid = (saturation > 0.5) & (value > 0.3)
    return {
        name: vivid & np.any([(hue >= lo) & (hue < hi) for lo, hi in ranges], axis=0)
        for name, ranges in HUE_RANGES.items()
    }


def colours_in(pixels: np.ndarray, min_fraction: float = 0.005) -> set[str]:
    return {name for name, mask in colour_masks(pixels).items() if mask.mean() >= min_fraction}


def downsample(pixels: np.ndarray, side: int = 32) -> np.ndarray:
    """As the data loader does."""
    image = Image.fromarray(pixels).resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(image)


def phrases_per_colour(caption: str) -> dict[str, tuple[str, str]]:
    """Colour word -> (the word before it, the text after it up to the next colour word).
    With one shape the position may come first ("At the top there is a red star"), so that
    shape gets the whole caption."""
    matches = list(COLOUR_WORD.finditer(caption))
    phrases = {}
    for i, match in enumerate(matches):
        before = caption[: match.start()].split()[-1].lower()
        end = matches[i + 1].start() if i + 1 < len(matches) else len(caption)
        after = caption if len(matches) == 1 else caption[match.end() : end]
        phrases[match.group(1)] = (before, after.lower())
    return phrases


def test_writes_the_official_coco_2017_layout(dataset):
    assert sorted(p.name for p in dataset.iterdir()) == ["annotations", *SPLITS]
    assert sorted(p.name for p in (dataset / "annotations").iterdir()) == [
        "captions_train2017.json",
        "captions_val2017.json",
    ]
    for split, count in zip(SPLITS, (20, 10), strict=True):
        content = load(dataset, split)
        assert set(content) >= {"info", "licenses", "images", "annotations"}
        assert len(content["images"]) == count
        license_ids = {license["id"] for license in content["licenses"]}
        for image in content["images"]:
            assert set(image) >= IMAGE_KEYS
            assert image["file_name"] == f"{image['id']:012d}.jpg"
            assert image["license"] in license_ids
            assert (dataset / split / image["file_name"]).is_file()
        assert len(list((dataset / split).iterdir())) == count  # no stray files
        for annotation in content["annotations"]:
            assert set(annotation) == {"id", "image_id", "caption"}
            assert isinstance(annotation["caption"], str) and annotation["caption"]


def test_ids_are_unique_across_splits(dataset):
    image_ids = [image["id"] for split in SPLITS for image in load(dataset, split)["images"]]
    annotation_ids = [a["id"] for split in SPLITS for a in load(dataset, split)["annotations"]]
    assert len(set(image_ids)) == len(image_ids) == 30
    assert len(set(annotation_ids)) == len(annotation_ids) == 30 * 5


def test_every_image_has_its_captions_interleaved_as_in_coco(dataset):
    for split in SPLITS:
        content = load(dataset, split)
        counts = Counter(a["image_id"] for a in content["annotations"])
        assert counts == {image["id"]: 5 for image in content["images"]}
        order = [a["image_id"] for a in content["annotations"]]
        runs = sum(1 for i in range(len(order)) if i == 0 or order[i] != order[i - 1])
        assert runs > len(content["images"])  # not one block of captions per image
    for captions in captions_by_image(load(dataset, "train2017")).values():
        assert len(set(captions)) > 1  # varied phrasings, not one caption repeated


def test_images_open_with_the_requested_size(tmp_path):
    root = generate_coco_demo(tmp_path / "demo", num_train=3, num_val=2, image_size=40)
    for split in SPLITS:
        for image in load(root, split)["images"]:
            assert (image["width"], image["height"]) == (40, 40)
            with Image.open(root / split / image["file_name"]) as opened:
                assert (opened.format, opened.mode, opened.size) == ("JPEG", "RGB", (40, 40))


def test_captions_per_image_is_honoured(tmp_path):
    root = generate_coco_demo(tmp_path / "demo", num_train=4, num_val=2, captions_per_image=2)
    for split in SPLITS:
        assert set(Counter(a["image_id"] for a in load(root, split)["annotations"]).values()) == {2}


def test_same_seed_gives_the_same_dataset_and_another_seed_does_not(tmp_path):
    def generate(name: str, seed: int) -> tuple[list[bytes], list[np.ndarray]]:
        root = generate_coco_demo(tmp_path / name, num_train=6, num_val=4, seed=seed)
        annotation_files = sorted((root / "annotations").iterdir())
        images = sorted(p for split in SPLITS for p in (root / split).iterdir())
        return [p.read_bytes() for p in annotation_files], [
            np.asarray(Image.open(p)) for p in images
        ]

    first, again, other = generate("a", 7), generate("b", 7), generate("c", 8)
    assert first[0] == again[0]
    assert len(first[1]) == len(again[1]) and all(
        np.array_equal(x, y) for x, y in zip(first[1], again[1], strict=True)
    )
    assert first[0] != other[0]
    assert not all(np.array_equal(x, y) for x, y in zip(first[1], other[1], strict=True))


def test_caption_colours_are_the_colours_seen_at_32x32(dataset):
    for pixels, image, captions in each_image(dataset):
        seen = colours_in(downsample(pixels))
        assert 1 <= len(seen) <= 2, image["file_name"]
        for caption in captions:
            assert set(COLOUR_WORD.findall(caption)) == seen, (image["file_name"], caption)


def test_caption_colours_would_not_match_shuffled_images(dataset):
    """The check above can tell images apart: pairing captions with the wrong images fails it."""
    items = list(each_image(dataset))
    seen = [colours_in(downsample(pixels)) for pixels, _, _ in items]
    mentioned = [set(COLOUR_WORD.findall(captions[0])) for _, _, captions in items]
    assert seen == mentioned
    assert seen != mentioned[1:] + mentioned[:1]


def test_caption_positions_and_sizes_match_the_pixels(dataset):
    for pixels, image, captions in each_image(dataset):
        side = pixels.shape[0]
        masks = colour_masks(pixels)
        for caption in captions:
            for colour, (word_before, text) in phrases_per_colour(caption).items():
                rows, columns = np.nonzero(masks[colour])
                x, y = columns.mean() / side, rows.mean() / side
                words = set(re.findall(r"[a-z]+", text))
                where = f"{image['file_name']}: {caption!r}"
                if "left" in words:
                    assert x < 0.4, where
                elif "right" in words:
                    assert x > 0.6, where
                else:
                    assert 0.35 < x < 0.65, where
                if words & {"top", "upper"}:
                    assert y < 0.4, where
                elif words & {"bottom", "lower"}:
                    assert y > 0.6, where
                else:
                    assert 0.35 < y < 0.65, where
                extent = max(np.ptp(rows), np.ptp(columns)) + 1
                if word_before in SMALL_WORDS:
                    assert extent < 0.32 * side, where
                elif word_before in LARGE_WORDS:
                    assert extent > 0.32 * side, where


def test_caption_shape_words_match_the_scene(dataset):
    for _, image, captions in each_image(dataset):
        kinds = {shape["colour"]: shape["shape"] for shape in image["scene"]["shapes"]}
        for caption in captions:
            for colour, (_, text) in phrases_per_colour(caption).items():
                # With two shapes, a colour's text ends before the other shape's noun.
                words = set(re.findall(r"[a-z]+", text))
                named = {kind for kind, nouns in SHAPE_WORDS.items() if words & nouns}
                assert named == {kinds[colour]}, (image["file_name"], caption)


def test_existing_root_is_refused_and_left_alone(tmp_path):
    root = tmp_path / "demo"
    root.mkdir()
    (root / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        generate_coco_demo(root, num_train=2, num_val=1)
    assert [p.name for p in root.iterdir()] == ["mine.txt"]


def test_interrupted_run_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_render = coco_demo.render

    def render_then_fail(scene, side):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real_render(scene, side)

    monkeypatch.setattr(coco_demo, "render", render_then_fail)
    with pytest.raises(KeyboardInterrupt):
        generate_coco_demo(tmp_path / "demo", num_train=10, num_val=5)
    assert calls["n"] == 6
    assert list(tmp_path.iterdir()) == []  # neither `demo` nor the half-built staging folder


def test_command_line(tmp_path, capsys):
    root = tmp_path / "cli"
    main(["--root", str(root), "--train", "3", "--val", "2", "--seed", "1", "--image-size", "32"])
    assert len(load(root, "train2017")["images"]) == 3
    assert len(load(root, "val2017")["images"]) == 2
    assert str(root) in capsys.readouterr().out


def test_uncaptioned_training_images_only_lose_their_captions(dataset, tmp_path):
    """The dataset of the same seed, with the annotations of 3 training images left out."""
    root = generate_coco_demo(
        tmp_path / "demo", num_train=20, num_val=10, seed=3, num_uncaptioned=3
    )
    for split in SPLITS:
        assert sorted(p.read_bytes() for p in (root / split).iterdir()) == sorted(
            p.read_bytes() for p in (dataset / split).iterdir()
        )
    full, partial = load(dataset, "train2017"), load(root, "train2017")
    assert partial["images"] == full["images"]  # every image is still listed
    uncaptioned = {image for image, captions in captions_by_image(partial).items() if not captions}
    assert len(uncaptioned) == 3
    assert partial["annotations"] == [
        a for a in full["annotations"] if a["image_id"] not in uncaptioned
    ]
    assert load(root, "val2017") == load(dataset, "val2017")


@pytest.mark.parametrize("count", [-1, 5])
def test_more_uncaptioned_images_than_training_images_are_refused(tmp_path, count):
    with pytest.raises(ValueError, match="num_uncaptioned"):
        generate_coco_demo(tmp_path / "demo", num_train=4, num_val=2, num_uncaptioned=count)
    assert not (tmp_path / "demo").exists()


def test_command_line_leaves_captions_out(tmp_path):
    root = tmp_path / "cli"
    main(["--root", str(root), "--train", "4", "--val", "2", "--uncaptioned", "2"])
    captions = captions_by_image(load(root, "train2017"))
    assert len(captions) == 4 and sum(not c for c in captions.values()) == 2
    assert all(captions_by_image(load(root, "val2017")).values())

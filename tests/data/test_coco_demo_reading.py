"""Reading demo captions back into attributes: exact on everything the generator writes."""

import json

import pytest

from mwvae.data.coco_demo import generate_coco_demo
from mwvae.data.coco_demo_reading import Attributes, read_caption, scene_attributes


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    root = generate_coco_demo(tmp_path_factory.mktemp("demo") / "root", num_train=150, num_val=50)
    return [
        json.loads((root / "annotations" / f"captions_{s}.json").read_text())
        for s in ("train2017", "val2017")
    ]


def test_every_generated_caption_reads_as_its_scene(annotations):
    checked = 0
    for content in annotations:
        scenes = {e["id"]: scene_attributes(e["scene"]) for e in content["images"]}
        for a in content["annotations"]:
            assert read_caption(a["caption"]) == scenes[a["image_id"]], a["caption"]
            checked += 1
    assert checked == 1000


def test_reading_finds_colour_shape_pairs_and_positions():
    read = read_caption(
        "A tiny purple plus sign in the upper right corner, with a big cyan disc at the top."
    )
    assert read.shapes == {("purple", "cross"), ("cyan", "circle")}
    assert read.positions == {"top right", "top"}  # "at the top" is not read inside "top right"
    assert read.colours == {"purple", "cyan"}


def test_a_garbled_phrase_loses_only_its_attribute():
    truth = Attributes(frozenset({("red", "star")}), frozenset({"left"}))
    assert read_caption("a red star on the left").agreement(truth) == dict.fromkeys(
        ("colours", "shapes", "positions", "all"), True
    )
    garbled = read_caption("a red [UNK] on the left").agreement(truth)
    assert garbled == {"colours": False, "shapes": False, "positions": True, "all": False}
    wrong_shape = read_caption("a red circle on the left").agreement(truth)
    assert wrong_shape == {"colours": True, "shapes": False, "positions": True, "all": False}
    assert read_caption("").agreement(truth)["all"] is False

"""caption_attribute_metrics of the captions written by a model whose captions are set by hand."""

import pytest
import torch

from mwvae.data.coco_demo_reading import Attributes
from mwvae.evaluation.attributes import caption_attribute_metrics
from mwvae.evaluation.written_captions import written_captions
from mwvae.models import MWVAE

from ..models.tiny import IMAGE, LABEL, TOKENS, make_model

RED_STAR = Attributes(frozenset({("red", "star")}), frozenset({"left"}))
RED_BOX = Attributes(frozenset({("red", "square")}), frozenset({"left"}))
BLUE_STAR = Attributes(frozenset({("blue", "star")}), frozenset({"top"}))
SAYS = {4: RED_STAR, 5: RED_BOX, 6: BLUE_STAR}  # a caption's first id -> what it names


class Demo:
    """What the evaluation asks of the data: how a caption reads, what each test image shows."""

    def caption_attributes(self, ids):
        return [SAYS[int(row[0])] for row in ids]

    def scene_attributes(self, split):
        assert split == "test"
        return [RED_STAR, RED_BOX, BLUE_STAR, RED_STAR]


def test_written_captions_are_scored_attribute_by_attribute_against_their_images():
    model = make_model(MWVAE, modalities={"image": IMAGE, "caption": TOKENS}).eval()
    true_ids = torch.tensor([[4, 3, 0], [5, 3, 0], [6, 3, 0], [4, 3, 0]])
    split = {"image": torch.rand(4, 1, 4, 4), "caption": true_ids}

    def written(observed, style=None):
        """From the image alone, "red star on the left" for every image; else the truth."""
        if set(observed) == {"image"}:
            return {"caption": torch.tensor([[4, 3, 0]] * len(observed["image"]))}
        return {"caption": observed["caption"]}

    model.reconstruct = written
    written = written_captions(model, split, size=3)  # batches of 3 and 1
    assert set(written["caption"]) == {"image", "caption", "joint"}
    metrics = caption_attribute_metrics(Demo(), split, written)
    image = {
        a: metrics[f"caption_attributes/image_to_caption/{a}"]
        for a in ("colours", "shapes", "positions", "all")
    }
    # Truths: red star, red box (same colour and position), blue star (neither), red star.
    assert image == {"colours": 0.75, "shapes": 0.5, "positions": 0.75, "all": 0.5}
    for source in ("joint", "caption"):
        assert metrics[f"caption_attributes/{source}_to_caption/all"] == 1.0
    # Chance: the next image's true caption (red box, blue star, red star, red star).
    chance = {
        a: metrics[f"caption_attributes/chance/{a}"]
        for a in ("colours", "shapes", "positions", "all")
    }
    assert chance == pytest.approx({"colours": 0.5, "shapes": 0.25, "positions": 0.5, "all": 0.25})


def test_data_that_cannot_read_captions_give_no_keys():
    written = {"caption": {"image": torch.tensor([[4, 3, 0]])}}
    assert caption_attribute_metrics(object(), {}, written) == {}


def test_models_without_token_captions_write_none():
    model = make_model(MWVAE, modalities={"image": IMAGE, "label": LABEL}).eval()
    split = {"image": torch.rand(4, 1, 4, 4), "label": torch.tensor([0, 1, 2, 3])}
    assert written_captions(model, split, size=3) == {}

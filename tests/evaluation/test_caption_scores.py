"""BLEU-4 and CIDEr-D of written captions against an image's references."""

import math
import random

import pytest
import torch
from torchmetrics.functional.text import bleu_score

from mwvae.data.captioned import CaptionedSplit
from mwvae.evaluation.caption_scores import (
    bleu4,
    caption_score_metrics,
    cider_d,
    references_by_image,
    words,
)


def random_corpus(seed: int = 0, max_references: int = 5):
    """60 images with 1..max_references random captions each and a candidate
    per image, a third of them one of its references, one empty."""
    rng = random.Random(seed)
    vocabulary = (
        "a the red blue green circle square star at top left right bottom of and small big in on"
    )
    vocabulary = vocabulary.split()

    def caption():
        return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 12)))

    references = [[caption() for _ in range(rng.randint(1, max_references))] for _ in range(60)]
    candidates = [rng.choice(r) if rng.random() < 0.3 else caption() for r in references]
    candidates[5] = ""
    return candidates, references


def test_scores_match_the_coco_caption_benchmark_code_on_a_random_corpus():
    # pycocoevalcap 1.2 (the packaged coco-caption), Bleu(4) and Cider() on these
    # very captions (pre-tokenised: words joined by spaces), run once in a throwaway
    # environment on 2026-12-03: it is 104 MB and needs Java, so it is no dependency.
    candidates, references = random_corpus()
    assert bleu4(candidates, references) == pytest.approx(0.4563882587996667, abs=1e-9)
    assert cider_d(candidates, references) == pytest.approx(2.5842213323624645, abs=1e-9)


def test_bleu4_is_torchmetrics_corpus_bleu_where_no_reference_lengths_tie():
    candidates, references = random_corpus(seed=1, max_references=1)  # one length per image
    expected = float(bleu_score(candidates, references, n_gram=4))
    assert 0.1 < expected < 1
    assert bleu4(candidates, references) == pytest.approx(expected, rel=1e-6)


def test_bleu4_takes_the_shorter_of_two_equally_close_reference_lengths():
    # Both references are one word from the candidate's four; coco-caption takes the
    # 3-word one, so no brevity penalty; every n-gram of the candidate is in the 5-word one.
    for references in (["a b c", "a b c d e"], ["a b c d e", "a b c"]):
        assert bleu4(["a b c d"], [references]) == pytest.approx(1.0)
    # With only the 5-word reference the penalty is exp(1 - 5/4).
    assert bleu4(["a b c d"], [["a b c d e"]]) == pytest.approx(math.exp(1 - 5 / 4))
    assert bleu4(["x y z w"], [["a b c d"]]) == 0.0  # no 4-gram matches


def test_cider_d_by_hand():
    # Two images with no n-gram in common: every n-gram's idf is log 2, so a candidate
    # equal to its only reference has cosine 1 at every n, no length penalty: 10.
    references = [["red circle at the top"], ["blue star on the left"]]
    assert cider_d(["red circle at the top", "blue star on the left"], references) == 10.0
    assert cider_d(["blue star on the left", "red circle at the top"], references) == 0.0
    # An n-gram in every image's references (idf 0) earns nothing.
    shared = [["a red circle"], ["a blue star"]]
    assert cider_d(["a", "a"], shared) == 0.0
    # The same words twice over, against the caption once: each of its unigrams counts
    # min(2, 1) * 1 (clipped), over norms sqrt(2^2 + 2^2) and sqrt(1 + 1); its bigrams
    # "red circle" (twice) and "circle red": min(2, 1) * 1 over sqrt(2^2 + 1) and 1; no
    # 3- or 4-gram of the reference; length 4 against 2: penalty exp(-2^2 / (2 * 6^2)).
    value = cider_d(["red circle red circle", "blue star"], [["red circle"], ["blue star"]])
    unigrams = 2 * (1 * 1) / (math.sqrt(8) * math.sqrt(2))
    bigrams = 1 / (math.sqrt(2**2 + 1) * 1)
    first = 10 * math.exp(-(2**2) / (2 * 6**2)) * (unigrams + bigrams) / 4
    second = 10 * 2 / 4  # "blue star": its unigrams and bigram match, no 3- or 4-grams
    assert value == pytest.approx((first + second) / 2)


def test_words_are_lower_cased_without_punctuation():
    assert words("A red Circle, at the top-left. It's 2!") == [
        "a",
        "red",
        "circle",
        "at",
        "the",
        "top",
        "left",
        "it's",
        "2",
    ]


def test_caption_text_metrics_score_every_source_against_every_reference_of_its_image():
    texts = [
        "a red circle at the top",
        "the red circle is at the top",
        "a blue star on the left",
        "one blue star on the left side",
        "a green square at the bottom",
    ]
    captioned = CaptionedSplit(
        images=torch.zeros(3, 1),
        captions=torch.zeros(5, 1),
        owner=torch.tensor([0, 0, 1, 1, 2]),
        texts=texts,
    )
    assert references_by_image(captioned) == [texts[:2], texts[2:4], texts[4:]]
    written = {"caption": {"image": torch.tensor([0, 2, 4]), "joint": torch.tensor([4, 2, 0])}}
    metrics = caption_score_metrics(written, lambda ids: [texts[i] for i in ids], captioned)
    assert metrics["caption_text/image_to_caption/bleu4"] == pytest.approx(1.0)
    assert metrics["caption_text/image_to_caption/cider_d"] > 5
    # The joint's first and last captions belong to each other's images.
    assert metrics["caption_text/joint_to_caption/cider_d"] == pytest.approx(
        cider_d([texts[4], texts[2], texts[0]], references_by_image(captioned))
    )
    assert metrics["caption_text/chance/cider_d"] == pytest.approx(
        cider_d([texts[2], texts[4], texts[0]], references_by_image(captioned))
    )
    assert metrics["caption_text/chance/bleu4"] < metrics["caption_text/image_to_caption/bleu4"]

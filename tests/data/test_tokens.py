"""Captions as token ids: the vocabulary of the training captions, the ids' layout, the text back."""

import pytest

from mwvae.data.captions import load_tokenizer
from mwvae.data.tokens import CaptionVocabulary, TokenOptions, tokenize
from mwvae.special_tokens import EOS_ID, PAD_ID, SPECIALS, UNK_ID

CAPTIONS = ["A red circle on the left.", "a blue square at the top", "A red star, and a red box."]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TokenOptions().tokenizer)  # the packaged MiniLM's WordPiece, offline


def build(tokenizer, captions=CAPTIONS, **options) -> CaptionVocabulary:
    return CaptionVocabulary.build(
        tokenize(tokenizer, captions), tokenizer, TokenOptions(**options)
    )


def test_vocabulary_is_the_specials_then_the_most_frequent_training_tokens(tokenizer):
    vocabulary = build(tokenizer, vocab_size=7)
    assert vocabulary.tokens[: len(SPECIALS)] == list(SPECIALS)
    # "a" 4 times, "red" 3, then "the" and "." twice each: the tie goes to the first seen.
    assert vocabulary.tokens[4:] == ["a", "red", "the"]
    assert len(build(tokenizer)) == len(SPECIALS) + len(
        {t for c in CAPTIONS for t in tokenizer.tokenize(c)}
    )


def test_ids_are_tokens_then_eos_then_padding_and_read_back_as_text(tokenizer):
    vocabulary = build(tokenizer, max_length=12)
    ids = vocabulary.encode(tokenize(tokenizer, CAPTIONS))
    assert ids.shape == (3, 12)
    lengths = [len(tokenizer.tokenize(c)) for c in CAPTIONS]
    for row, length in zip(ids, lengths, strict=True):
        assert (row[:length] > EOS_ID).all() and row[length] == EOS_ID
        assert (row[length + 1 :] == PAD_ID).all()
    assert vocabulary.decode(ids) == [
        "a red circle on the left.",
        "a blue square at the top",
        "a red star, and a red box.",
    ]


def test_long_captions_are_cut_and_unknown_tokens_read_as_unk(tokenizer):
    vocabulary = build(tokenizer, max_length=4)
    ids = vocabulary.encode(tokenize(tokenizer, ["a green circle on the left"]))
    assert ids.tolist()[0][-1] == EOS_ID and len(ids[0]) == 4
    assert ids[0, 1] == UNK_ID  # "green" is in no training caption
    assert vocabulary.decode(ids) == ["a [UNK] circle"]
    ids[0, 2] = 999  # past the vocabulary: an untrained decoder's output
    assert vocabulary.decode(ids) == ["a [UNK] [UNK]"]
    assert vocabulary.unknown_share(ids) == pytest.approx(1 / 3)


def test_a_vocabulary_must_open_with_the_special_tokens(tokenizer):
    with pytest.raises(ValueError, match="PAD"):
        CaptionVocabulary(["a", "b"], tokenizer, 8)

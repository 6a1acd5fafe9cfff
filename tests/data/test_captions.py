"""CaptionEmbedder against an independent computation: each caption alone
through the encoder, no padding, pooled by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from mwvae.data import captions as captions_module
from mwvae.data.captions import DEFAULT_MODEL, CaptionEmbedder, resolve_model_path

# Very different lengths in no sorted order, so that padding or reordering bugs show.
CAPTIONS = [
    "A man riding a red bicycle down a busy city street.",
    "Dog.",
    "Two giraffes standing in a grassy field next to a tall tree, while a group of tourists "
    "in a white safari truck takes photographs of them from the dirt road behind a fence.",
    "A plate of food.",
    "",
    "A kitchen with wooden cabinets, a stainless steel refrigerator and a small window.",
    "Surfer riding a wave.",
]
ATOL = 2e-5


@pytest.fixture(scope="module")
def reference() -> tuple:
    path = resolve_model_path(DEFAULT_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return tokenizer, model


@pytest.fixture(scope="module")
def language_model() -> tuple:
    return captions_module.load_language_model(DEFAULT_MODEL, "cpu")


@pytest.fixture
def shared_model(monkeypatch, language_model) -> list[str]:
    """Embedders get the module's one loaded model; the list records each load."""
    loads: list[str] = []

    def load(name, device):
        loads.append(name)
        return language_model

    monkeypatch.setattr(captions_module, "load_language_model", load)
    return loads


def token_states(reference, caption: str) -> torch.Tensor:
    tokenizer, model = reference
    with torch.no_grad():
        return model(**tokenizer(caption, return_tensors="pt")).last_hidden_state[0]


def test_captions_have_very_different_lengths(reference):
    lengths = [len(reference[0](caption)["input_ids"]) for caption in CAPTIONS]
    assert max(lengths) > 4 * min(lengths)
    assert lengths != sorted(lengths) and lengths != sorted(lengths, reverse=True)


def test_mean_pooling_matches_each_caption_alone(reference, shared_model):
    expected = torch.stack([token_states(reference, caption).mean(0) for caption in CAPTIONS])
    embeddings = CaptionEmbedder(pooling="mean").embed(CAPTIONS, progress=False)
    assert embeddings.dtype == torch.float32 and embeddings.device.type == "cpu"
    assert not embeddings.is_inference()  # usable outside inference mode, in place too
    torch.testing.assert_close(embeddings, expected, atol=ATOL, rtol=1e-4)


def test_cls_pooling_matches_each_caption_alone(reference, shared_model):
    expected = torch.stack([token_states(reference, caption)[0] for caption in CAPTIONS])
    embeddings = CaptionEmbedder(pooling="cls").embed(CAPTIONS, progress=True)
    torch.testing.assert_close(embeddings, expected, atol=ATOL, rtol=1e-4)


def test_small_batches_and_chunks_give_the_same_result(reference, shared_model, monkeypatch):
    # Batches of 2 and chunks of 2 batches: several batches per chunk, a ragged last one.
    monkeypatch.setattr(captions_module, "BATCHES_PER_CHUNK", 2)
    expected = torch.stack([token_states(reference, caption).mean(0) for caption in CAPTIONS])
    embeddings = CaptionEmbedder(batch_size=2).embed(CAPTIONS, progress=False)
    torch.testing.assert_close(embeddings, expected, atol=ATOL, rtol=1e-4)


def test_normalize_gives_unit_rows_in_the_mean_direction(shared_model):
    raw = CaptionEmbedder().embed(CAPTIONS, progress=False)
    unit = CaptionEmbedder(normalize=True).embed(CAPTIONS, progress=False)
    torch.testing.assert_close(unit, raw / raw.norm(dim=1, keepdim=True))


def test_model_is_loaded_lazily_and_once(shared_model):
    embedder = CaptionEmbedder(model=DEFAULT_MODEL)
    assert shared_model == []
    embedder.embed(CAPTIONS[:2], progress=False)
    embedder.embed(CAPTIONS[2:], progress=False)
    assert shared_model == [DEFAULT_MODEL]


def test_invalid_pooling_raises_naming_the_allowed_values(shared_model):
    with pytest.raises(ValueError, match="mean.*cls"):
        CaptionEmbedder(pooling="max")
    assert shared_model == []


@pytest.mark.parametrize("alias", [DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"])
def test_alias_resolves_to_the_bundled_model_folder(alias):
    folder = Path(resolve_model_path(alias))
    assert folder.is_dir() and (folder / "config.json").is_file()


@pytest.mark.parametrize("name", ["bert-base-uncased", "/some/local/folder"])
def test_other_names_are_left_unchanged(name):
    assert resolve_model_path(name) == name

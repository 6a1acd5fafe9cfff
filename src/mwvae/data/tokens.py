"""Captions as token sequences: WordPiece tokens in a vocabulary of the training captions.

The tokenizer is the WordPiece tokenizer of the packaged MiniLM model (read
offline, like the embeddings' model). Its 30,522 entries would make every
decoder step a 30,522-way softmax, so the captions are written in a
vocabulary of their own: the special tokens `SPECIALS` and then the
`vocab_size - 4` WordPiece tokens most frequent in the training captions
(ties by first occurrence); any other token reads as `[UNK]`. A caption is
`max_length` ids: its tokens, cut to `max_length - 1`, then `[EOS]`, then
`[PAD]` (id 0, which the likelihood skips).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from mwvae.data.captions import DEFAULT_MODEL
from mwvae.options import bounded
from mwvae.special_tokens import EOS_ID, PAD_ID, SPECIALS, UNK, UNK_ID


@dataclass
class TokenOptions:
    """`data.tokens` of a COCO config: how captions become ids."""

    vocab_size: int = bounded(1000, minimum=len(SPECIALS) + 1)  # the decoder's softmax size
    max_length: int = bounded(32, minimum=2)  # ids per caption, [EOS] included
    tokenizer: str = DEFAULT_MODEL  # whose WordPiece vocabulary splits the words


def tokenize(tokenizer: PreTrainedTokenizerBase, captions: Sequence[str]) -> list[list[str]]:
    """Each caption's WordPiece tokens."""
    return [tokenizer.tokenize(caption) for caption in captions]


class CaptionVocabulary:
    """The ids of captions and their text back (module docstring)."""

    def __init__(self, tokens: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_length: int):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a caption vocabulary starts with {SPECIALS}, got {tokens[:4]}")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def build(
        cls,
        tokenized: Sequence[Sequence[str]],
        tokenizer: PreTrainedTokenizerBase,
        options: TokenOptions,
    ) -> CaptionVocabulary:
        """The vocabulary of `options.vocab_size` entries that covers the
        `tokenized` captions (lists of `tokenize`) best."""
        counts = Counter(t for tokens in tokenized for t in tokens)
        frequent = [t for t, _ in counts.most_common(options.vocab_size - len(SPECIALS))]
        return cls([*SPECIALS, *frequent], tokenizer, options.max_length)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokenized: Sequence[Sequence[str]]) -> Tensor:
        """(N, max_length) int64 ids of `tokenize`d captions: the tokens, [EOS], padding."""
        ids = torch.full((len(tokenized), self.max_length), PAD_ID, dtype=torch.long)
        for row, tokens in enumerate(tokenized):
            tokens = tokens[: self.max_length - 1]
            ids[row, : len(tokens)] = torch.tensor(
                [self.index.get(t, UNK_ID) for t in tokens], dtype=torch.long
            )
            ids[row, len(tokens)] = EOS_ID
        return ids

    def decode(self, ids: Tensor) -> list[str]:
        """The text of each row of ids, up to its first [EOS] (or [PAD]); an id
        past the vocabulary (a decoder has `vocab_size` outputs, the training
        captions may fill fewer) reads as [UNK]."""
        texts = []
        for row in ids.tolist():
            words = []
            for i in row:
                if i in (EOS_ID, PAD_ID):
                    break
                words.append(self.tokens[i] if i < len(self.tokens) else UNK)
            texts.append(self.tokenizer.convert_tokens_to_string(words))
        return texts

    def unknown_share(self, ids: Tensor) -> float:
        """The share of tokens (not padding) that read as [UNK]."""
        real = (ids != PAD_ID) & (ids != EOS_ID)
        return float(((ids == UNK_ID) & real).sum() / real.sum().clamp(min=1))

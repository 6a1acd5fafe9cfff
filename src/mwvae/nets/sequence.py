"""A recurrent encoder and decoder for token sequences (captions as ids, `mwvae.data.tokens`).

The encoder reads a caption with a GRU and maps its state after the last
real token ([EOS]) to q(z | caption). The decoder is autoregressive: its
output for z is the conditioning state s = W z (the `tokens` likelihood's
parameters, a tensor like every decoder's, so K samples flatten and expand
as for images); from s, `teacher_forced` gives every position's logits
given the caption's earlier tokens (training, likelihoods) and `generate`
writes a caption token by token (greedy, or sampled at a temperature). s is
both the GRU's initial state (through tanh) and part of every step's input,
so that the decoder cannot forget z as the caption grows (an autoregressive
decoder that can model captions alone otherwise learns to ignore z).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mwvae.nets.mlp import GaussianHead
from mwvae.special_tokens import BOS_ID, EOS_ID, PAD_ID, UNK_ID


def caption_lengths(ids: Tensor) -> Tensor:
    """Real tokens per row ([EOS] included, padding not); at least 1."""
    return (ids != PAD_ID).sum(1).clamp(min=1)


class TokenEncoder(nn.Module):
    """Token ids (B, L) -> a diagonal Gaussian, from a GRU's state after the caption."""

    def __init__(self, vocab_size: int, latent_dim: int, embedding_dim: int, hidden_dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.gru = nn.GRU(embedding_dim, hidden_dim, batch_first=True)
        self.head = GaussianHead(hidden_dim, latent_dim)

    def forward(self, ids: Tensor) -> Tensor:
        states, _ = self.gru(self.embed(ids))
        # A causal GRU: the state at the last real token has not seen the padding.
        last = (caption_lengths(ids) - 1).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
        return self.head(states.gather(1, last).squeeze(1))


class TokenDecoder(nn.Module):
    """z -> the conditioning state of an autoregressive GRU over token ids (module docstring).
    `word_dropout`: in training, the share of the previous tokens fed as [UNK],
    which makes the decoder lean on z (Bowman et al., 2016)."""

    def __init__(
        self,
        latent_dim: int,
        vocab_size: int,
        max_length: int,
        embedding_dim: int,
        hidden_dim: int,
        word_dropout: float = 0.0,
    ):
        super().__init__()
        if not 0 <= word_dropout < 1:
            raise ValueError(f"word_dropout: must be in [0, 1), got {word_dropout}")
        self.max_length, self.word_dropout = max_length, word_dropout
        self.latent = nn.Linear(latent_dim, hidden_dim)
        self.embed = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.gru = nn.GRU(embedding_dim + hidden_dim, hidden_dim, batch_first=True)
        self.readout = nn.Linear(hidden_dim, vocab_size)

    def forward(self, z: Tensor) -> Tensor:
        return self.latent(z)

    def step_inputs(self, state: Tensor, previous: Tensor) -> Tensor:
        """The GRU's inputs: each previous token's embedding beside the state."""
        conditioning = state.unsqueeze(1).expand(-1, previous.shape[1], -1)
        return torch.cat([self.embed(previous), conditioning], -1)

    def teacher_forced(self, state: Tensor, target: Tensor) -> Tensor:
        """(B, L, V) logits of each target token given the ones before it."""
        previous = torch.cat([torch.full_like(target[:, :1], BOS_ID), target[:, :-1]], 1)
        if self.training and self.word_dropout > 0:
            dropped = torch.rand(previous.shape, device=previous.device) < self.word_dropout
            dropped[:, 0] = False  # [BOS] stays: it says where the caption starts
            previous = previous.masked_fill(dropped & (previous != PAD_ID), UNK_ID)
        states, _ = self.gru(self.step_inputs(state, previous), state.tanh().unsqueeze(0))
        return self.readout(states)

    @torch.no_grad()
    def generate(
        self, state: Tensor, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """(B, max_length) ids written token by token: the likeliest each step
        (temperature 0) or drawn from the softmax at `temperature`; [PAD] after [EOS]."""
        batch = state.shape[0]
        hidden = state.tanh().unsqueeze(0)
        token = torch.full((batch, 1), BOS_ID, dtype=torch.long, device=state.device)
        ended = torch.zeros(batch, dtype=torch.bool, device=state.device)
        out = torch.full((batch, self.max_length), PAD_ID, dtype=torch.long, device=state.device)
        for position in range(self.max_length):
            step, hidden = self.gru(self.step_inputs(state, token), hidden)
            logits = self.readout(step[:, 0]).float()
            if temperature > 0:
                probabilities = (logits / temperature).softmax(-1)
                token = torch.multinomial(probabilities, 1, generator=generator)
            else:
                token = logits.argmax(-1, keepdim=True)
            out[:, position] = token[:, 0].masked_fill(ended, PAD_ID)
            ended |= token[:, 0] == EOS_ID
            if bool(ended.all()):
                break
        return out

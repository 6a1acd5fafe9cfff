"""The token-sequence networks and their likelihood, against a GRU written out by hand."""

import pytest
import torch

from mwvae.likelihoods import make_likelihood
from mwvae.nets import MLPDecoder, TokenDecoder, TokenEncoder
from mwvae.special_tokens import BOS_ID, EOS_ID, PAD_ID
from tests.models.tiny import make_captions

VOCAB, LENGTH, LATENT = 9, 6, 3


def gru_step(gru: torch.nn.GRU, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU step from its equations (PyTorch's gate order: reset, update, new)."""
    wi, wh = gru.weight_ih_l0, gru.weight_hh_l0
    bi, bh = gru.bias_ih_l0, gru.bias_hh_l0
    ir, iz, in_ = (x @ wi.T + bi).chunk(3, -1)
    hr, hz, hn = (h @ wh.T + bh).chunk(3, -1)
    reset, update = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    new = torch.tanh(in_ + reset * hn)
    return (1 - update) * new + update * h


def log_likelihood_by_hand(decoder: TokenDecoder, z: torch.Tensor, ids: torch.Tensor):
    """sum_t log p(ids_t | ids_<t, z) over the real tokens ([EOS] included), step by step."""
    state = decoder.latent(z)
    h, previous, total = state.tanh(), torch.full((len(z),), BOS_ID), torch.zeros(len(z))
    for t in range(ids.shape[1]):
        x = torch.cat([decoder.embed(previous), state], -1)
        h = gru_step(decoder.gru, x, h)
        log_p = decoder.readout(h).log_softmax(-1).gather(1, ids[:, t : t + 1]).squeeze(1)
        total = total + torch.where(ids[:, t] != PAD_ID, log_p, 0.0)
        previous = ids[:, t]
    return total


def make_decoder(**options) -> TokenDecoder:
    torch.manual_seed(0)
    return TokenDecoder(LATENT, VOCAB, LENGTH, embedding_dim=4, hidden_dim=5, **options).double()


def test_token_likelihood_is_the_autoregressive_log_likelihood_without_padding():
    decoder = make_decoder()
    likelihood = make_likelihood("tokens", decoder)
    z = torch.randn(7, LATENT, dtype=torch.float64)
    ids = make_captions(7, torch.Generator().manual_seed(3))
    nll = likelihood.nll(decoder(z), ids)
    torch.testing.assert_close(nll, -log_likelihood_by_hand(decoder, z, ids))
    # More padding changes nothing.
    padded = torch.cat([ids, torch.full((7, 4), PAD_ID)], 1)
    torch.testing.assert_close(likelihood.nll(decoder(z), padded), nll)


def test_teacher_forcing_is_causal():
    decoder = make_decoder()
    z = torch.randn(4, LATENT, dtype=torch.float64)
    ids = make_captions(4, torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[:, 3] = (changed[:, 3] + 1) % VOCAB
    before, after = (decoder.teacher_forced(decoder(z), x) for x in (ids, changed))
    torch.testing.assert_close(before[:, :4], after[:, :4])  # position 3's logits read ids < 3
    assert not torch.allclose(before[:, 4:], after[:, 4:])


def test_greedy_generation_follows_the_likeliest_token_and_pads_after_eos():
    decoder = make_decoder()
    z = torch.randn(50, LATENT, dtype=torch.float64)
    ids = decoder.generate(decoder(z))
    assert ids.shape == (50, LENGTH)
    logits = decoder.teacher_forced(decoder(z), ids)
    for row, row_logits in zip(ids, logits, strict=True):
        ended = (row == EOS_ID).nonzero()
        stop = int(ended[0]) + 1 if len(ended) else LENGTH
        assert torch.equal(row[:stop], row_logits[:stop].argmax(-1))
        assert (row[stop:] == PAD_ID).all()


def test_sampling_at_a_temperature_is_seeded_and_differs_from_greedy():
    decoder = make_decoder()
    state = decoder(torch.randn(200, LATENT, dtype=torch.float64))
    draws = [
        decoder.generate(state, temperature=1.0, generator=torch.Generator().manual_seed(5))
        for _ in range(2)
    ]
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], decoder.generate(state))


def test_word_dropout_feeds_unknown_tokens_in_training_only():
    decoder = make_decoder(word_dropout=0.5)
    z = torch.randn(30, LATENT, dtype=torch.float64)
    ids = make_captions(30, torch.Generator().manual_seed(2))
    state = decoder(z)
    decoder.eval()
    evaluated = decoder.teacher_forced(state, ids)
    torch.testing.assert_close(evaluated, decoder.teacher_forced(state, ids))
    decoder.train()
    assert not torch.allclose(decoder.teacher_forced(state, ids), evaluated)
    with pytest.raises(ValueError, match="word_dropout"):
        make_decoder(word_dropout=1.0)


def test_encoder_reads_the_caption_not_its_padding():
    torch.manual_seed(0)
    encoder = TokenEncoder(VOCAB, LATENT, embedding_dim=4, hidden_dim=5)
    ids = make_captions(6, torch.Generator().manual_seed(4))
    q = encoder(ids)
    q_padded = encoder(torch.cat([ids, torch.full((6, 3), PAD_ID)], 1))
    torch.testing.assert_close(q_padded.mu, q.mu)
    torch.testing.assert_close(q_padded.logvar, q.logvar)
    changed = ids.clone()
    changed[:, 0] = (changed[:, 0] + 1) % VOCAB
    assert not torch.allclose(encoder(changed).mu, q.mu)


def test_tokens_likelihood_refuses_a_decoder_that_is_not_a_sequence_decoder():
    with pytest.raises(TypeError, match="TokenDecoder"):
        make_likelihood("tokens", MLPDecoder(3, [4], [5]))

import pytest
import torch

from mwvae.nets import ConvDecoder, ConvEncoder


def test_encoder_and_decoder_shapes_with_leading_sample_dimensions():
    encoder = ConvEncoder([3, 32, 32], channels=[8, 16, 32], latent_dim=5)
    decoder = ConvDecoder(5, channels=[32, 16, 8], output_shape=[3, 32, 32])
    q = encoder(torch.rand(4, 3, 32, 32))
    assert q.mu.shape == q.logvar.shape == (4, 5)
    assert decoder(q.mu).shape == (4, 3, 32, 32)
    z = torch.randn(7, 4, 5)  # importance samples x batch x latent
    out = decoder(z)
    assert out.shape == (7, 4, 3, 32, 32)
    # Each sample is decoded on its own: the leading dimensions are only a batch.
    torch.testing.assert_close(out[2, 1], decoder(z[2, 1:2])[0])


def test_a_side_that_cannot_be_halved_enough_is_refused():
    with pytest.raises(ValueError, match="cannot be halved 3 times"):
        ConvEncoder([3, 20, 20], channels=[8, 16, 32], latent_dim=5)

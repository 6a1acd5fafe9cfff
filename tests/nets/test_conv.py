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


def test_polymnist_networks_go_28_14_7_4_and_back():
    """MoPoE's PolyMNIST networks: 3x3 stride-2 convolutions 3 -> 32 -> 64 -> 128
    (28 -> 14 -> 7 -> 4, 2048 features) and transposed ones back to 28x28."""
    encoder = ConvEncoder([3, 28, 28], channels=[32, 64, 128], latent_dim=5, kernel_size=3)
    decoder = ConvDecoder(5, channels=[128, 64, 32], output_shape=[3, 28, 28], kernel_size=3)
    assert encoder.head.linear.in_features == 128 * 4 * 4
    sides, h = [], decoder.project(torch.randn(2, 5)).view(2, 128, 4, 4)
    for layer in decoder.body:
        h = layer(h)
        sides.append(h.shape[-1])
    assert sides[::2] == [7, 14, 28]  # (the odd entries are the ReLUs between them)
    assert encoder(torch.rand(2, 3, 28, 28)).mu.shape == (2, 5)
    assert decoder(torch.randn(6, 2, 5)).shape == (6, 2, 3, 28, 28)


@pytest.mark.parametrize(("side", "kernel_size"), [(20, 4), (28, 4), (27, 3), (32, 5)])
def test_the_decoder_ends_on_the_side_that_halving_rounded(side, kernel_size):
    encoder = ConvEncoder([1, side, side], [4, 4, 4], latent_dim=3, kernel_size=kernel_size)
    decoder = ConvDecoder(3, [4, 4, 4], output_shape=[1, side, side], kernel_size=kernel_size)
    assert encoder(torch.rand(2, 1, side, side)).mu.shape == (2, 3)
    assert decoder(torch.randn(2, 3)).shape == (2, 1, side, side)


def test_a_side_that_cannot_be_halved_enough_is_refused():
    with pytest.raises(ValueError, match="cannot be halved 3 times"):
        ConvEncoder([3, 4, 4], channels=[8, 16, 32], latent_dim=5)
    with pytest.raises(ValueError, match="cannot be halved 3 times"):
        ConvDecoder(5, channels=[32, 16, 8], output_shape=[3, 4, 4], kernel_size=3)

"""Convolutional encoder and decoder for small square images: each stride-2
layer halves the side and the decoder retraces the encoder's sides in reverse.

4x4 kernels (the default, DCGAN-style) halve an even side exactly (COCO's
32 -> 16 -> 8 -> 4 -> 2); 3x3 kernels round an odd side up (MoPoE's PolyMNIST
networks: 28 -> 14 -> 7 -> 4). Where halving rounded, the decoder's transposed
convolution adds the lost row and column back (`output_padding`), so it ends
on the image's side exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from mwvae.nets.mlp import GaussianHead

STRIDE = 2


def same_padding(kernel_size: int) -> int:
    return (kernel_size - 1) // 2


def halved_sides(side: int, layers: int, kernel_size: int) -> list[int]:
    """The sides of the feature maps of `layers` stride-2 convolutions, the image's first."""
    sides, padding = [side], same_padding(kernel_size)
    for _ in range(layers):
        if sides[-1] < STRIDE:  # a 1-pixel map is not halved, and a large kernel would not fit
            raise ValueError(
                f"an image side of {side} cannot be halved {layers} times; use a larger "
                "image or fewer channels entries"
            )
        sides.append((sides[-1] + 2 * padding - kernel_size) // STRIDE + 1)
    return sides


def upsampling_layer(n_in: int, n_out: int, kernel_size: int, side_in: int, side_out: int):
    """A stride-2 transposed convolution from `side_in` to exactly `side_out`."""
    padding = same_padding(kernel_size)
    reached = (side_in - 1) * STRIDE - 2 * padding + kernel_size
    # The encoder's floor division loses at most one pixel per layer.
    assert 0 <= side_out - reached < STRIDE, (side_in, side_out, kernel_size)
    return nn.ConvTranspose2d(
        n_in, n_out, kernel_size, STRIDE, padding, output_padding=side_out - reached
    )


class ConvEncoder(nn.Module):
    """Stride-2 convolutions (`channels` filters each) with ReLU, then a Gaussian head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int],
        latent_dim: int,
        kernel_size: int = 4,
    ):
        super().__init__()
        in_channels, side, _ = input_shape
        padding = same_padding(kernel_size)
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size, STRIDE, padding),
                nn.ReLU(),
            ]
            in_channels = out_channels
        self.body = nn.Sequential(*layers, nn.Flatten())
        final_side = halved_sides(side, len(channels), kernel_size)[-1]
        self.head = GaussianHead(in_channels * final_side**2, latent_dim)

    def forward(self, x: Tensor):
        return self.head(self.body(x))


class ConvDecoder(nn.Module):
    """A linear layer to a small feature map (`channels[0]` of them), then
    stride-2 transposed convolutions up to the image, through the sides an
    encoder with the same kernel size goes down through; outputs per-pixel
    parameters (logits, locations)."""

    def __init__(
        self,
        latent_dim: int,
        channels: Sequence[int],
        output_shape: Sequence[int],
        kernel_size: int = 4,
    ):
        super().__init__()
        out_channels, side, _ = output_shape
        self.output_shape = tuple(output_shape)
        sides = halved_sides(side, len(channels), kernel_size)[::-1]  # the smallest first
        self.start = (channels[0], sides[0])
        self.project = nn.Sequential(
            nn.Linear(latent_dim, channels[0] * self.start[1] ** 2), nn.ReLU()
        )
        layers: list[nn.Module] = []
        steps = zip(channels, [*channels[1:], out_channels], sides[:-1], sides[1:], strict=True)
        for n_in, n_out, side_in, side_out in steps:
            layers += [upsampling_layer(n_in, n_out, kernel_size, side_in, side_out), nn.ReLU()]
        self.body = nn.Sequential(*layers[:-1])  # the parameters: no ReLU after the last layer

    def forward(self, z: Tensor) -> Tensor:
        # Importance sampling passes (K, batch, latent): convolve over all leading dims at once.
        leading = z.shape[:-1]
        h = self.project(z.reshape(-1, z.shape[-1])).view(
            -1, self.start[0], self.start[1], self.start[1]
        )
        return self.body(h).view(*leading, *self.output_shape)

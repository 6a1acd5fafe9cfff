"""Convolutional encoder and decoder for small RGB images (32x32 COCO): each
layer halves (encoder) or doubles (decoder) the side, DCGAN-style."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from mwvae.nets.mlp import GaussianHead


def _downsampled_side(side: int, layers: int) -> int:
    if side % 2**layers:
        raise ValueError(
            f"an image side of {side} cannot be halved {layers} times; use a multiple of "
            f"{2**layers} or fewer channels entries"
        )
    return side // 2**layers


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions with ReLU, then a Gaussian head."""

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], latent_dim: int):
        super().__init__()
        in_channels, side, _ = input_shape
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [nn.Conv2d(in_channels, out_channels, 4, 2, 1), nn.ReLU()]
            in_channels = out_channels
        self.body = nn.Sequential(*layers, nn.Flatten())
        final_side = _downsampled_side(side, len(channels))
        self.head = GaussianHead(in_channels * final_side**2, latent_dim)

    def forward(self, x: Tensor):
        return self.head(self.body(x))


class ConvDecoder(nn.Module):
    """A linear layer to a small feature map, then stride-2 transposed
    convolutions up to the image; outputs per-pixel logits."""

    def __init__(self, latent_dim: int, channels: Sequence[int], output_shape: Sequence[int]):
        super().__init__()
        out_channels, side, _ = output_shape
        self.output_shape = tuple(output_shape)
        self.start = (channels[0], _downsampled_side(side, len(channels)))
        self.project = nn.Sequential(
            nn.Linear(latent_dim, channels[0] * self.start[1] ** 2), nn.ReLU()
        )
        layers: list[nn.Module] = []
        for n_in, n_out in zip(channels, [*channels[1:], out_channels], strict=True):
            layers += [nn.ConvTranspose2d(n_in, n_out, 4, 2, 1), nn.ReLU()]
        self.body = nn.Sequential(*layers[:-1])  # logits: no ReLU after the last layer

    def forward(self, z: Tensor) -> Tensor:
        # Importance sampling passes (K, batch, latent): convolve over all leading dims at once.
        leading = z.shape[:-1]
        h = self.project(z.reshape(-1, z.shape[-1])).view(
            -1, self.start[0], self.start[1], self.start[1]
        )
        return self.body(h).view(*leading, *self.output_shape)

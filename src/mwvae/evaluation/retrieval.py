"""Cross-modal retrieval between images and captions: recall@k.

Caption -> image: each caption ranks every test image; a hit when its own
image is among the top k. Image -> caption: each image ranks every caption;
a hit when any of its own captions is among the top k (the usual COCO
protocol). Scores are either the posterior similarity, minus the W2^2
between the two unimodal posteriors, or the similarity of what one modality
decodes to the other's real data. Fused: all the captions of an image, as
one posterior (`fused_by_image`), rank every test image (caption -> image:
a hit when that image is among the top k).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from mwvae.gaussians import DiagGaussian, barycenter

Scores = Callable[[slice], Tensor]  # rows of the (queries x gallery) score matrix


def pairwise_w2_squared(a: DiagGaussian, b: DiagGaussian) -> Tensor:
    """W2^2 between every posterior of `a` and every one of `b`: for diagonal
    Gaussians it is the squared distance between the vectors (mu, sigma)."""
    left = torch.cat([a.mu, a.std], -1)
    right = torch.cat([b.mu, b.std], -1)
    return torch.cdist(left, right).square()


def best_relevant_rank(scores: Tensor, relevant: Tensor) -> Tensor:
    """Per query row, how many irrelevant gallery items score at least as high
    as its best-scoring relevant item (0: a relevant item comes first). Ties
    count against the query, so a model that scores everything alike gets no
    credit."""
    best = scores.masked_fill(~relevant, -math.inf).amax(1, keepdim=True)
    return ((scores >= best) & ~relevant).sum(1)


def recalls(
    scores: Scores,
    num_queries: int,
    relevant: Callable[[slice], Tensor],
    ks: Sequence[int],
    chunk: int = 1000,
) -> dict[int, float]:
    """recall@k for each k, scoring `chunk` queries at a time."""
    ranks = torch.cat(
        [
            best_relevant_rank(scores(rows), relevant(rows)).cpu()
            for rows in (slice(i, i + chunk) for i in range(0, num_queries, chunk))
        ]
    )
    return {k: (ranks < k).float().mean().item() for k in ks}


def chance_recall(num_gallery: int, num_relevant: Tensor, k: int) -> float:
    """Expected recall@k of a random ranking: 1 - C(G - r, k) / C(G, k),
    averaged over the queries' numbers r of relevant items."""
    g = float(num_gallery)
    r = num_relevant.double()
    miss = torch.where(
        g - r >= k,
        torch.exp(
            torch.lgamma(g - r + 1)
            - torch.lgamma(g - r - k + 1)
            - math.lgamma(g + 1)
            + math.lgamma(g - k + 1)
        ),
        torch.zeros_like(r),
    )
    return (1 - miss).mean().item()


def retrieval_recalls(
    caption_to_image: Scores,
    image_to_caption: Scores,
    owner: Tensor,
    num_images: int,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """`caption_to_image/r@k` and `image_to_caption/r@k` from two score functions;
    `owner[c]` is the image of caption c."""
    images = torch.arange(num_images, device=owner.device)
    metrics = {}
    for k, value in recalls(
        caption_to_image, len(owner), lambda rows: owner[rows, None] == images, ks
    ).items():
        metrics[f"caption_to_image/r@{k}"] = value
    for k, value in recalls(
        image_to_caption, num_images, lambda rows: images[rows, None] == owner, ks
    ).items():
        metrics[f"image_to_caption/r@{k}"] = value
    return metrics


def fused_by_image(q: DiagGaussian, owner: Tensor, num_images: int) -> DiagGaussian:
    """Each image's captions fused into one posterior: the W2 barycenter of
    theirs (`gaussians.barycenter`), the MW-VAE way of combining several
    observations of one modality. `owner[c]` is the image of caption c
    (sorted); every image needs one."""
    counts = torch.bincount(owner, minlength=num_images)
    if bool((counts == 0).any()):
        raise ValueError("fused_by_image: an image without captions has nothing to fuse")
    slot = torch.arange(len(owner), device=owner.device) - (counts.cumsum(0) - counts)[owner]
    parts, masks = [], []
    for j in range(int(counts.max())):  # the j-th caption of every image that has one
        rows = slot == j
        mu = q.mu.new_zeros(num_images, q.mu.shape[1]).index_copy_(0, owner[rows], q.mu[rows])
        logvar = torch.zeros_like(mu).index_copy_(0, owner[rows], q.logvar[rows])
        parts.append(DiagGaussian(mu, logvar))
        masks.append(counts > j)
    return barycenter(parts, masks)


def fused_caption_recalls(
    q_caption: DiagGaussian, q_image: DiagGaussian, owner: Tensor, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """`caption_to_image/r@k` with all the captions of each image as one query
    (`fused_by_image`), ranking the images by minus the W2^2 to their posteriors."""
    num_images = len(q_image.mu)
    fused = fused_by_image(q_caption, owner, num_images)
    images = torch.arange(num_images, device=owner.device)

    def scores(rows: slice) -> Tensor:
        return -pairwise_w2_squared(DiagGaussian(fused.mu[rows], fused.logvar[rows]), q_image)

    found = recalls(scores, num_images, lambda rows: images[rows, None] == images, ks)
    return {f"caption_to_image/r@{k}": value for k, value in found.items()}


def chance_recalls(owner: Tensor, num_images: int, ks: Sequence[int] = (1, 5, 10)):
    """recall@k of random rankings, for the same sizes."""
    captions_per_image = torch.bincount(owner.cpu(), minlength=num_images)
    metrics = {}
    for k in ks:
        metrics[f"caption_to_image/r@{k}"] = chance_recall(num_images, torch.ones(len(owner)), k)
        metrics[f"image_to_caption/r@{k}"] = chance_recall(len(owner), captions_per_image, k)
    return metrics

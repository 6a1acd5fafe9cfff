import itertools
import math

import pytest
import torch

from mwvae.evaluation.retrieval import (
    best_relevant_rank,
    chance_recall,
    chance_recalls,
    fused_by_image,
    fused_caption_recalls,
    pairwise_w2_squared,
    retrieval_recalls,
)
from mwvae.gaussians import DiagGaussian, barycenter, w2_squared


def test_pairwise_w2_matches_the_closed_form_pair_by_pair():
    torch.manual_seed(0)
    a = DiagGaussian(torch.randn(4, 3), torch.randn(4, 3))
    b = DiagGaussian(torch.randn(5, 3), torch.randn(5, 3))
    expected = w2_squared(
        DiagGaussian(a.mu[:, None], a.logvar[:, None]), DiagGaussian(b.mu[None], b.logvar[None])
    )
    torch.testing.assert_close(pairwise_w2_squared(a, b), expected, rtol=1e-4, atol=1e-5)


def test_rank_counts_items_scoring_above_the_best_relevant_one():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.7], [0.9, 0.1, 0.5, 0.7]])
    relevant = torch.tensor([[False, True, True, False], [True, False, False, False]])
    assert best_relevant_rank(scores, relevant).tolist() == [2, 0]


def test_ties_count_against_the_query():
    scores = torch.zeros(2, 4)  # a model that scores everything alike
    relevant = torch.eye(2, 4, dtype=torch.bool)
    assert best_relevant_rank(scores, relevant).tolist() == [3, 3]


def test_recalls_of_a_perfect_and_a_reversed_ranking():
    # 3 images with 2 captions each; caption c belongs to image c // 2.
    owner = torch.tensor([0, 0, 1, 1, 2, 2])
    match = (owner[:, None] == torch.arange(3)).float()  # (captions, images)

    def perfect():
        return retrieval_recalls(lambda r: match[r], lambda r: match.T[r], owner, 3, ks=(1, 2))

    assert set(perfect().values()) == {1.0}
    reversed_ = retrieval_recalls(lambda r: -match[r], lambda r: -match.T[r], owner, 3, ks=(1, 3))
    # Own image ranked last of 3 for captions; own captions last two of 6 for images.
    assert reversed_["caption_to_image/r@1"] == 0.0
    assert reversed_["caption_to_image/r@3"] == 1.0
    assert reversed_["image_to_caption/r@3"] == 0.0


def exact_chance(gallery: int, relevant: int, k: int) -> float:
    """By enumerating every top-k set of a random ranking."""
    tops = list(itertools.combinations(range(gallery), k))
    return sum(any(i < relevant for i in top) for top in tops) / len(tops)


@pytest.mark.parametrize(("gallery", "relevant", "k"), [(6, 1, 2), (7, 2, 3), (5, 3, 3), (4, 1, 4)])
def test_chance_recall_matches_enumeration(gallery, relevant, k):
    assert math.isclose(
        chance_recall(gallery, torch.tensor([relevant]), k),
        exact_chance(gallery, relevant, k),
        rel_tol=1e-9,
    )


def test_chance_recalls_of_one_relevant_item_is_k_over_n():
    owner = torch.arange(100).repeat_interleave(5)
    chance = chance_recalls(owner, 100)
    assert math.isclose(chance["caption_to_image/r@10"], 0.1, rel_tol=1e-9)
    # Five relevant captions among 500: 1 - C(495, 10) / C(500, 10).
    expected = 1 - math.comb(495, 10) / math.comb(500, 10)
    assert math.isclose(chance["image_to_caption/r@10"], expected, rel_tol=1e-9)


def test_fused_captions_are_each_images_w2_barycenter():
    generator = torch.Generator().manual_seed(0)
    owner = torch.tensor([0, 0, 1, 2, 2, 2])
    q = DiagGaussian(torch.randn(6, 3, generator=generator), torch.randn(6, 3, generator=generator))
    fused = fused_by_image(q, owner, 3)
    for image in range(3):
        rows = (owner == image).nonzero().squeeze(1).tolist()
        expected = barycenter([DiagGaussian(q.mu[r : r + 1], q.logvar[r : r + 1]) for r in rows])
        torch.testing.assert_close(fused.mu[image], expected.mu[0])
        torch.testing.assert_close(fused.logvar[image], expected.logvar[0])
    # The barycenter is the W2 minimiser: moving it away raises the summed W2^2.

    def costs(p):
        return sum(w2_squared(p, DiagGaussian(q.mu[r], q.logvar[r])) for r in (3, 4, 5))

    at = DiagGaussian(fused.mu[2], fused.logvar[2])
    assert costs(at) < costs(DiagGaussian(fused.mu[2] + 0.1, fused.logvar[2]))
    assert costs(at) < costs(DiagGaussian(fused.mu[2], fused.logvar[2] + 0.1))
    with pytest.raises(ValueError, match="without captions"):
        fused_by_image(q, owner, 4)


def test_fused_captions_find_their_image_when_it_sits_at_their_barycenter():
    generator = torch.Generator().manual_seed(1)
    owner = torch.tensor([0, 0, 1, 1, 1, 2])
    q = DiagGaussian(torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator))
    images = fused_by_image(q, owner, 3)
    assert fused_caption_recalls(q, images, owner, ks=(1,)) == {"caption_to_image/r@1": 1.0}
    reversed_images = DiagGaussian(images.mu.flip(0), images.logvar.flip(0))
    found = fused_caption_recalls(q, reversed_images, owner, ks=(1, 3))
    assert found["caption_to_image/r@1"] == pytest.approx(1 / 3)  # only the middle one
    assert found["caption_to_image/r@3"] == 1.0

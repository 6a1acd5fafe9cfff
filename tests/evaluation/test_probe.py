import torch

from mwvae.evaluation.probe import linear_probe_accuracy


def test_probe_separates_linearly_separable_classes_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (600,), generator=generator)
    centers = torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, -4.0]])
    features = centers[labels] + 0.3 * torch.randn(600, 2, generator=generator)
    assert linear_probe_accuracy(features[:400], labels[:400], features[400:], labels[400:]) == 1.0
    noise = torch.randn(600, 2, generator=generator)
    assert linear_probe_accuracy(noise[:400], labels[:400], noise[400:], labels[400:]) < 0.5

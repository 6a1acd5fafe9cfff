"""Linear probe: how linearly decodable is the digit from a representation?"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def linear_probe_accuracy(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    l2: float = 1e-4,
    steps: int = 100,
) -> float:
    """Multinomial logistic regression (L-BFGS, L2 penalty) fit on the
    training features, accuracy on the test features. Features are
    standardised with the training statistics."""
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    num_classes = int(train_y.max()) + 1
    weight = torch.zeros(train_x.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + l2 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return ((test_x @ weight + bias).argmax(-1) == test_y).float().mean().item()

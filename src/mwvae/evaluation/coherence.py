"""Coherence: do generated modalities show the class of what they were generated from?

For every subset S of modalities the model can infer from and every target
modality t outside S that can be read, `coherence/<S>_to_<t>` is the share
of test examples whose t, decoded from S alone (`reconstruct`, the posterior
mean), shows the example's class. A categorical modality is read by the
argmax of its decoded probabilities and compared with its own true value; any
other by a classifier of the dataset's class (`mwvae.evaluation.classifier`).
Plain accuracies (MultiVae averages per class instead).

`coherence/joint`: prior samples decoded into every readable modality, the
share whose readings all agree. A model with private codes (FMW-VAE) fills an
unobserved target's private code in each of its `imputation_styles`: the
first (`prior`, which does not look at the class) is the headline key, the
others get their own (`coherence_class_mean/...`).

`coherence/observed_<k>`: for k = 1 .. M - 1, the mean of `coherence/<S>_to_<t>`
over every scored pair of a subset S of k modalities and a target t outside
it (MoPoE's coherence against the number of observed modalities);
`coherence/leave_one_out` the mean over targets t of (all others) -> t, the
same pairs as `observed_<M-1>`, under the name the papers' tables use.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mwvae.evaluation.likelihood import inferable_subsets, subset_name
from mwvae.likelihoods import Categorical
from mwvae.models.base import Batch, MultimodalVAE

Reader = Callable[[Tensor], Tensor]  # decoded values (likelihood means) -> classes


def readers(model: MultimodalVAE, classifiers: dict[str, Callable]) -> dict[str, Reader]:
    """How each readable modality's decoded values become classes."""
    found: dict[str, Reader] = {}
    for m, likelihood in model.likelihoods.items():
        if isinstance(likelihood, Categorical):
            found[m] = lambda probabilities: probabilities.argmax(-1)
        elif m in classifiers:
            found[m] = classifiers[m]
    return found


def styled_key(metric: str, style: str | None, headline: str | None) -> str:
    """`metric/...` for the headline style, `metric_<style>/...` for the others."""
    group, name = metric.split("/", 1)
    return metric if style == headline else f"{group}_{style}/{name}"


def headline_style(model: MultimodalVAE) -> str | None:
    """The style of the headline keys: the first the model offers (None: it has none)."""
    return model.imputation_styles[0] if model.imputation_styles else None


def target_styles(model: MultimodalVAE, target: str, observed) -> list[str | None]:
    """The styles to decode `target` from `observed` in: each of the model's
    when it imputes the target's private code, else just the headline's."""
    if target in model.private_modalities and target not in observed:
        return list(model.imputation_styles)
    return [headline_style(model)]


@torch.no_grad()
def cross_coherences(
    model: MultimodalVAE,
    batch: Batch,
    truths: dict[str, Tensor],
    read: dict[str, Reader],
) -> dict[str, Tensor]:
    """Per example (bool), whether each S -> t generation shows the truth of t."""
    headline = headline_style(model)
    hits = {}
    names = [m for m in model.modality_names if m in batch]
    for subset in inferable_subsets(model, names):
        targets = [t for t in read if t not in subset]
        if not targets:
            continue
        observed = {m: batch[m] for m in subset}
        needed = {t: target_styles(model, t, subset) for t in targets}
        for style in dict.fromkeys(s for styles in needed.values() for s in styles):
            decoded = model.reconstruct(observed, style=style)
            for t in targets:
                if style in needed[t]:
                    key = styled_key(pair_key(subset, t, names), style, headline)
                    hits[key] = read[t](decoded[t]) == truths[t]
    return hits


def pair_key(subset, target: str, names) -> str:
    """`coherence/<S>_to_<t>` (the headline style's key)."""
    return f"coherence/{subset_name(subset, names)}_to_{target}"


def coherence_by_observed(
    model: MultimodalVAE, names, read: dict[str, Reader], pairs: dict[str, float]
) -> dict[str, float]:
    """`coherence/observed_<k>` and `coherence/leave_one_out` (module
    docstring) from the per-pair coherences `pairs` (`cross_coherences`'
    keys, averaged), in each style that has keys of its own. A target
    without a private code decodes alike in every style: its headline value
    stands in for the style's."""
    names = list(names)
    headline = headline_style(model)
    metrics = {}
    for style in dict.fromkeys([headline, *model.imputation_styles]):
        by_size: dict[int, list[float]] = {}
        own = False  # whether this style has a key of its own
        for subset in inferable_subsets(model, names):
            for t in read:
                if t in subset:
                    continue
                base = pair_key(subset, t, names)
                key = styled_key(base, style, headline)
                own = own or (key in pairs and style != headline)
                value = pairs.get(key, pairs.get(base))
                if value is not None:
                    by_size.setdefault(len(subset), []).append(value)
        if style != headline and not own:
            continue
        for size, values in sorted(by_size.items()):
            key = styled_key(f"coherence/observed_{size}", style, headline)
            metrics[key] = sum(values) / len(values)
            if size == len(names) - 1:
                metrics[styled_key("coherence/leave_one_out", style, headline)] = metrics[key]
    return metrics


@torch.no_grad()
def joint_coherence(
    model: MultimodalVAE, read: dict[str, Reader], n: int = 10_000, batch_size: int = 1000
) -> float:
    """Share of prior samples whose decoded modalities all show the same class."""
    agree = 0
    for start in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - start), model.prior_dim, device=model.device)
        decoded = model.decode(z, list(read))
        classes = [read[m](model.likelihoods[m].mean(out)) for m, out in decoded.items()]
        agree += int(torch.stack([c == classes[0] for c in classes]).all(0).sum())
    return agree / n

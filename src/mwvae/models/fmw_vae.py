"""FMW-VAE (Sec. 4.4, Fig. 15): shared and private latents, W2 on the shared part only.

Each encoder outputs a code [c_m, s_m]: `latent_dim` shared dimensions and
`private_dim` private ones, none for the modalities in `shared_only` (by
default the label, which has no style: given a private code it encoded the
class there, and the shared codes fell to the prior with nothing to align).
Decoder m reads [c, s_m]; the KL terms cover both parts; the alignment
covers only the shared parts, so a modality keeps what the others do not
carry (handwriting style for images).

`posterior` is the shared posterior (the W2 barycenter of the observed shared
parts). `reconstruct` decodes modality m from the shared code and the private
code of m: its own when m is observed, otherwise the prior's (`style: prior`)
or, as in the paper, the mean private code of the example's class in the
training set (`style: class_mean`; the class is the observed
`style_modality`, or the one decoded from the shared code when it is not
observed). `style: auto`, the default, is class_mean when the data has the
`style_modality` and prior otherwise (COCO has no class). Class means are accumulated over each training epoch and saved
with the model. The shared/private machinery (codes, the whole latent,
`decode`, `reconstruct`, `transfer_style`) is `mwvae.models.private_codes`,
which MMVAE+ shares.

`decorrelation` (Sec. 6.2) penalises dependence between c_m and s_m:
`cross_cov` the squared Frobenius norm of their batch cross-covariance,
`mmd` the MMD between samples of q(c, s) and of q(c) q(s) (private parts
shuffled across the batch), Gaussian kernel. On incomplete data both are
over the examples that observe the modality, and the class means over those
that observe the class and every modality with a private code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mwvae.gaussians import DiagGaussian, barycenter
from mwvae.models.base import Batch, LossTerms, masks
from mwvae.models.mw_vae import MWVAE
from mwvae.models.private_codes import PrivateCodes
from mwvae.options import OptionError, bounded, choice
from mwvae.presence import Mask, Presence

IMPUTATION_STYLES = ("prior", "class_mean")  # how an unobserved private code is filled
STYLES = ("auto", *IMPUTATION_STYLES)  # auto: class_mean when the data has the class
DECORRELATIONS = ("none", "cross_cov", "mmd")


def cross_covariance_penalty(c: Tensor, s: Tensor, examples: Mask = None) -> Tensor:
    """||Cov(c, s)||_F^2 over the batch (over `examples`, None: all of it)."""
    if examples is None:
        c, s = c - c.mean(0), s - s.mean(0)
        return (c.T @ s / max(1, len(c) - 1)).square().sum()
    count = examples.sum()
    c, s = (torch.where(examples.unsqueeze(-1), x, 0.0) for x in (c, s))
    # Means over all rows rescaled to means over `examples` (by exactly 1 when all are).
    rescale = len(c) / count.clamp(min=1)
    c, s = (torch.where(examples.unsqueeze(-1), x - x.mean(0) * rescale, 0.0) for x in (c, s))
    return (c.T @ s / (count - 1).clamp(min=1)).square().sum()


def mmd_penalty(c: Tensor, s: Tensor, examples: Mask = None) -> Tensor:
    """MMD^2 between [c, s] and [c, s shuffled], Gaussian kernel of width
    sqrt(dim), over the pairs of `examples` (None: all of the batch)."""
    order = torch.randperm(len(s), device=s.device)
    joint = torch.cat([c, s], -1)
    independent = torch.cat([c, s[order]], -1)
    shuffled = None if examples is None else examples & examples[order]

    def kernel(a: Tensor, b: Tensor, a_rows: Mask, b_rows: Mask) -> Tensor:
        k = torch.exp(-torch.cdist(a, b).square() / a.shape[-1])
        if a_rows is None:
            return k.mean()
        # The mean over all pairs, rescaled to the mean over the kept ones.
        rescale = len(a_rows) * len(b_rows) / (a_rows.sum() * b_rows.sum()).clamp(min=1)
        return torch.where(a_rows.unsqueeze(-1) & b_rows, k, 0.0).mean() * rescale

    return (
        kernel(joint, joint, examples, examples)
        + kernel(independent, independent, shuffled, shuffled)
        - 2 * kernel(joint, independent, examples, shuffled)
    )


class FMWVAE(PrivateCodes, MWVAE):
    display_name = "FMW-VAE"  # with or without alignment

    @dataclass
    class Options(MWVAE.Options):
        private_dim: int = bounded(10, minimum=0)  # size of each private code
        # Modalities without a private code (labels have no style).
        shared_only: list[str] = field(default_factory=lambda: ["label"])
        # The private code of an unobserved modality (auto: class_mean when the
        # data has style_modality, else prior); resolved when the model is built.
        style: str = choice(STYLES, "auto")
        style_modality: str = "label"  # the class whose mean private codes class_mean uses
        decorrelation: str = choice(DECORRELATIONS, "none")  # of c and s (Sec. 6.2)
        decorrelation_weight: float = bounded(0.0, minimum=0)

    @classmethod
    def parse_options(cls, values: Mapping[str, Any], prefix: str, **context: Any) -> Options:
        """The options with `style: auto` resolved against the data's
        modalities, so that a reloaded model needs no data to decide."""
        options = super().parse_options(values, prefix, **context)
        if options.style != "auto":
            return options
        has_class = options.style_modality in context.get("modalities", {})
        return dataclasses.replace(options, style="class_mean" if has_class else "prior")

    @classmethod
    def check_options(cls, options: Options, prefix: str, **context: Any) -> None:
        modalities = context.get("modalities", {})
        if options.style == "class_mean" and options.style_modality not in modalities:
            raise OptionError(
                f"{prefix}.style: class_mean needs the class modality "
                f"{options.style_modality!r}; the data has {list(modalities)} "
                f"(use {prefix}.style=prior)"
            )

    def __init__(self, modalities: dict[str, dict[str, Any]], latent_dim: int, **options: Any):
        super().__init__(modalities, latent_dim, **options)
        num_classes = (
            modalities[self.options.style_modality]["decoder"]["output_shape"][-1]
            if self.options.style == "class_mean"
            else 1
        )
        for m in self.modality_names:
            self.register_buffer(f"style_sums_{m}", torch.zeros(num_classes, self.private_dim(m)))
        self.register_buffer("style_counts", torch.zeros(num_classes))

    def fuse(
        self, posteriors: dict[str, DiagGaussian], presence: Presence | None = None
    ) -> DiagGaussian:
        """The barycenter of the observed shared parts."""
        shared = [self.split(q)[0] for q in posteriors.values()]
        return barycenter(shared, masks(posteriors, presence))

    def elbo_terms(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> LossTerms:
        terms = super().elbo_terms(batch, posteriors, presence)
        if self.options.decorrelation != "none":
            penalty_fn = (
                cross_covariance_penalty
                if self.options.decorrelation == "cross_cov"
                else mmd_penalty
            )
            penalty = 0.0
            for m, q in posteriors.items():
                shared, private = self.split(q)
                if private.mu.shape[-1] == 0:
                    continue
                examples = presence.of_modality(m)
                if self.options.decorrelation == "cross_cov":
                    penalty = penalty + penalty_fn(shared.mu, private.mu, examples)
                else:
                    penalty = penalty + penalty_fn(shared.rsample(), private.rsample(), examples)
            terms.loss = terms.loss + self.options.decorrelation_weight * penalty
            terms.extra["decorrelation"] = penalty
        if self.training and self.options.style == "class_mean":
            self.accumulate_styles(batch, posteriors, presence)
        return terms

    # ------------------------------------------------------------------ styles
    @torch.no_grad()
    def accumulate_styles(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> None:
        """Add the examples that observe the class and every private modality."""
        key = self.options.style_modality
        counted = presence.all_of([key, *self.private_modalities])
        classes = batch[key]
        weights = torch.ones_like(classes, dtype=self.style_counts.dtype)
        if counted is not None:  # a hidden class is a placeholder: count it as 0, in class 0
            classes, weights = torch.where(counted, classes, 0), torch.where(counted, weights, 0.0)
        self.style_counts.index_add_(0, classes, weights)
        for m, q in posteriors.items():
            self.style_sums(m).index_add_(0, classes, self.split(q)[1].mu * weights.unsqueeze(-1))

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        for m in self.modality_names:
            self.style_sums(m).zero_()
        self.style_counts.zero_()

    def style_sums(self, m: str) -> Tensor:
        """Per class, the sum of the private codes of modality m this epoch."""
        return getattr(self, f"style_sums_{m}")

    def class_styles(self, m: str, classes: Tensor) -> Tensor:
        """The mean private code of modality m for each class."""
        means = self.style_sums(m) / self.style_counts.clamp(min=1).unsqueeze(-1)
        return means[classes]

    @property
    def imputation_styles(self) -> tuple[str, ...]:
        """`prior`: an unobserved modality's private code is the prior's (its
        mean, or a draw when sampling); `class_mean`: the mean private code of
        the example's class in the last training epoch (when the model was
        trained with that style)."""
        # class_mean needs the class means, kept only when training with that style
        return IMPUTATION_STYLES if self.options.style == "class_mean" else IMPUTATION_STYLES[:1]

    def impute_private(
        self,
        c: Tensor,
        observed: Batch,
        codes: dict[str, Tensor],
        missing: list[str],
        sample: bool,
        style: str | None,
    ) -> dict[str, Tensor]:
        style = style or self.options.style
        if style == "prior":
            return super().impute_private(c, observed, codes, missing, sample, style)
        key = self.options.style_modality
        if key in observed:
            classes = observed[key]
        else:  # the class decoded from the shared code (and the class's own private code, if any)
            own = codes.get(key, c.new_zeros(*c.shape[:-1], self.private_dim(key)))
            classes = self.decoders[key](torch.cat([c, own], -1)).argmax(-1)
        return {m: self.class_styles(m, classes) for m in missing}

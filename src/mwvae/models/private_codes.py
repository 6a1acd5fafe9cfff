"""Shared and private latents: what FMW-VAE and MMVAE+ have in common.

A modality m with a private code has an encoder that outputs a code
[c_m, s_m]: `latent_dim` shared dimensions, then `private_dim(m)` private
ones (none for a modality in the options' `shared_only`); decoder m reads
[c, s_m]. The model's whole latent, whose prior is N(0, I), is
[c, s_m for each of `private_modalities`]: what `decode` reads and
`proposal_components` covers.

`posterior` is the shared posterior (the model's `fuse` of the shared
parts). `reconstruct` decodes modality m from the shared code and the
private code of m: its own where m is observed, else one imputed in the
requested style (`impute_private`; `prior`: the prior's mean, or a draw when
sampling). A model mixes this in before its parent
(`class FMWVAE(PrivateCodes, MWVAE)`) and declares `private_dim` and
`shared_only` in its Options.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from mwvae.gaussians import DiagGaussian
from mwvae.models.base import Batch


def split(q: DiagGaussian, shared_dim: int) -> tuple[DiagGaussian, DiagGaussian]:
    """The shared and the private part of a code's posterior."""
    return (
        DiagGaussian(q.mu[..., :shared_dim], q.logvar[..., :shared_dim]),
        DiagGaussian(q.mu[..., shared_dim:], q.logvar[..., shared_dim:]),
    )


class PrivateCodes:
    """Shared and private codes over a `MultimodalVAE` (see the module's docstring)."""

    # std of a private code imputed by the `prior` style when sampling: the prior's.
    imputation_std = 1.0

    def private_dim(self, modality: str) -> int:
        return 0 if modality in self.options.shared_only else self.options.private_dim

    def code_dim(self, modality: str) -> int:
        return self.latent_dim + self.private_dim(modality)

    def split(self, q: DiagGaussian) -> tuple[DiagGaussian, DiagGaussian]:
        return split(q, self.latent_dim)

    @property
    def private_modalities(self) -> list[str]:
        return [m for m in self.modality_names if self.private_dim(m) > 0]

    def aligned_parts(self, posteriors: dict[str, DiagGaussian]) -> dict[str, DiagGaussian]:
        """W2 compares the shared parts: private codes hold what the others lack."""
        return {m: self.split(q)[0] for m, q in posteriors.items()}

    # ------------------------------------------------------------------ the whole latent
    @property
    def prior_dim(self) -> int:
        return self.latent_dim + sum(self.private_dim(m) for m in self.private_modalities)

    def decode(self, z: Tensor, modalities: Iterable[str] | None = None) -> dict[str, Tensor]:
        """z is the whole latent [c, s_m for each of `private_modalities`];
        decoder m reads [c, s_m] (c alone for a shared-only modality)."""
        sizes = [self.latent_dim] + [self.private_dim(m) for m in self.private_modalities]
        c, *privates = z.split(sizes, -1)
        private = dict(zip(self.private_modalities, privates, strict=True))
        empty = z[..., :0]
        names = self.modality_names if modalities is None else modalities
        return {m: self.decoders[m](torch.cat([c, private.get(m, empty)], -1)) for m in names}

    def whole_latent(self, c: Tensor, codes: dict[str, Tensor]) -> Tensor:
        """[c, s_m for each of `private_modalities`], what `decode` reads."""
        return torch.cat([c, *(codes[m] for m in self.private_modalities)], -1)

    def proposal_components(self, observed: Batch) -> list[DiagGaussian]:
        """The base's components, each over the whole latent."""
        components = []
        for subset in self.proposal_subsets(list(observed)):
            sub = {m: observed[m] for m in subset}
            components.append(self.over_whole_latent(self.posterior(sub), sub))
        return components

    def over_whole_latent(self, c: DiagGaussian, observed: Batch) -> DiagGaussian:
        """Over [c, s_m for every modality with a private code]: the shared
        posterior `c`, each observed modality's private posterior, and the prior
        for the private codes of the others."""
        parts = [c]
        for m in self.private_modalities:
            if m in observed:
                parts.append(self.split(self.encoders[m](observed[m]))[1])
            else:
                zeros = c.mu.new_zeros(*c.mu.shape[:-1], self.private_dim(m))
                parts.append(DiagGaussian(zeros, zeros))
        return DiagGaussian(
            torch.cat([p.mu for p in parts], -1), torch.cat([p.logvar for p in parts], -1)
        )

    # ------------------------------------------------------------------ imputation
    @property
    def imputation_styles(self) -> tuple[str, ...]:
        """`prior`: an unobserved modality's private code is the prior's mean,
        or a draw when sampling (std `imputation_std`)."""
        return ("prior",)

    def private_codes(
        self, c: Tensor, observed: Batch, sample: bool, style: str | None
    ) -> dict[str, Tensor]:
        """The private code of every modality in `private_modalities`: its own
        where it is observed, else imputed by `style` (None: the configured one)."""
        codes = {
            m: self.split(self.encoders[m](observed[m]))[1].sample_or_mean(sample)
            for m in self.private_modalities
            if m in observed
        }
        missing = [m for m in self.private_modalities if m not in codes]
        if not missing:
            return codes
        return codes | self.impute_private(c, observed, codes, missing, sample, style)

    def impute_private(
        self,
        c: Tensor,
        observed: Batch,
        codes: dict[str, Tensor],
        missing: list[str],
        sample: bool,
        style: str | None,
    ) -> dict[str, Tensor]:
        """The private codes of the `missing` modalities (the `prior` style)."""
        imputed = {}
        for m in missing:
            shape = (*c.shape[:-1], self.private_dim(m))
            if sample:
                imputed[m] = self.imputation_std * torch.randn(
                    shape, device=c.device, dtype=c.dtype
                )
            else:
                imputed[m] = torch.zeros(shape, device=c.device, dtype=c.dtype)
        return imputed

    @torch.no_grad()
    def reconstruct(
        self, observed: Batch, sample: bool = False, style: str | None = None
    ) -> dict[str, Tensor]:
        self.check_style(style)
        c = self.posterior(observed).sample_or_mean(sample)
        z = self.whole_latent(c, self.private_codes(c, observed, sample, style))
        return {m: self.likelihoods[m].mean(logits) for m, logits in self.decode(z).items()}

    @torch.no_grad()
    def transfer_style(self, content: Batch, style: Batch) -> dict[str, Tensor]:
        """Every modality decoded from the shared posterior mean of `content`
        and the private codes (posterior means) of the modalities in `style`,
        the others' as `reconstruct` imputes them: e.g. a label written in the
        handwriting of an image, `transfer_style({"label": y}, {"image": x})`."""
        c = self.posterior(content).mu
        own = {m: x for m, x in style.items() if m in self.private_modalities}
        codes = self.private_codes(c, content, False, None) | {
            m: self.split(self.encoders[m](x))[1].mu for m, x in own.items()
        }
        z = self.whole_latent(c, codes)
        return {m: self.likelihoods[m].mean(logits) for m, logits in self.decode(z).items()}

"""MW-VAE (Sec. 3.4, Fig. 7): factorized encoders aligned by the closed-form W2.

Each modality is encoded and reconstructed on its own, with its own KL term;
the loss adds `align_weight` * W2^2(q(z|x), q(z|y)) (the mean pairwise W2^2
for more modalities, `MultimodalVAE.alignment`). With align_weight = 0 this is
the factorized M-VAE baseline of Sec. 4.2 (`model=m_vae`), whose W2 is logged
but not optimised. Several observed modalities are decoded from the W2
barycenter of their posteriors.
"""

from __future__ import annotations

from dataclasses import dataclass

from mwvae.gaussians import DiagGaussian, barycenter, kl_to_standard_normal
from mwvae.models.base import Batch, LossTerms, MultimodalVAE, masks
from mwvae.options import bounded
from mwvae.presence import Presence, batch_mean


class MWVAE(MultimodalVAE):
    @dataclass
    class Options(MultimodalVAE.Options):
        align_weight: float = bounded(10.0, minimum=0)  # lambda (0: M-VAE, W2 only logged)

    @property
    def display_name(self) -> str:
        """Without alignment this is the factorized M-VAE (`model=m_vae`)."""
        return "MW-VAE" if self.options.align_weight else "M-VAE"

    def fuse(
        self, posteriors: dict[str, DiagGaussian], presence: Presence | None = None
    ) -> DiagGaussian:
        """The W2 barycenter of the observed posteriors (per example, of those
        whose modality it observes)."""
        return barycenter(list(posteriors.values()), masks(posteriors, presence))

    def objective(self, batch: Batch) -> LossTerms:
        """The factorized ELBO terms plus lambda * W2^2."""
        terms = super().objective(batch)
        if terms.w2 is not None and self.options.align_weight:
            terms.loss = terms.loss + self.options.align_weight * terms.w2
        return terms

    def elbo_terms(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> LossTerms:
        """sum_m [ -E_{q_m} log p(x_m | z_m) + beta * KL(q_m || N(0, I)) ], each
        modality's terms over the examples that observe it."""
        recon = {
            m: self.reconstruction_nll(batch, m, q.rsample(), presence.of_modality(m))
            for m, q in posteriors.items()
        }
        kl = {
            m: batch_mean(kl_to_standard_normal(q), presence.of_modality(m))
            for m, q in posteriors.items()
        }
        loss = sum(recon.values()) + self.beta_now * sum(kl.values())
        return LossTerms(loss=loss, recon=recon, kl=kl)

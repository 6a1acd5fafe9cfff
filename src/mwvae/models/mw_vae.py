"""MW-VAE (Sec. 3.4, Fig. 7): factorized encoders aligned by the closed-form W2.

Each modality is encoded and reconstructed on its own, with its own KL term;
the base adds lambda * W2^2(q(z|x), q(z|y)). With lambda = 0 this is the
factorized M-VAE baseline of Sec. 4.2 (`model=m_vae`), whose W2 is logged but
not optimised. Several observed modalities are decoded from the W2
barycenter of their posteriors (the base's `fuse`).
"""

from __future__ import annotations

from mwvae.gaussians import DiagGaussian, kl_to_standard_normal
from mwvae.models.base import Batch, LossTerms, MultimodalVAE
from mwvae.presence import Presence, batch_mean


class MWVAE(MultimodalVAE):
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

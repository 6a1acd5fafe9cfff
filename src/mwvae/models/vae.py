"""VAE (Kingma & Welling 2014) on one modality of the dataset: the unimodal reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mwvae.models.base import MultimodalVAE
from mwvae.options import OptionError


class VAE(MultimodalVAE):
    """The base's ELBO with a single modality, chosen by `modality`.

    It infers only from that modality; `posterior` and `reconstruct` raise a
    KeyError for any other.
    """

    display_name = "VAE"
    unimodal = True

    @dataclass
    class Options(MultimodalVAE.Options):
        modality: str = "image"  # the data's modality it models

    @classmethod
    def check_options(cls, options: Options, prefix: str, **context: Any) -> None:
        modalities = context.get("modalities", {})
        if options.modality not in modalities:
            raise OptionError(
                f"{prefix}.modality: {options.modality!r} is not one of the data's "
                f"modalities {list(modalities)}"
            )

    def used_modalities(self, modalities: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {self.options.modality: modalities[self.options.modality]}

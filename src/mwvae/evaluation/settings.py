"""The evaluation's settings and their defaults, in one place: the config
schema of `evaluation` (train) and `settings` (eval) is this dataclass, and
`evaluate` fills whatever a caller leaves out from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from mwvae.options import bounded, choice

METHODS = ("importance", "ais")  # of the likelihood estimate


@dataclass
class AISSettings:
    """Annealed importance sampling (`likelihood.method=ais`)."""

    steps: int = bounded(
        500, minimum=1
    )  # intermediate distributions from the prior to the posterior
    leapfrog: int = bounded(10, minimum=1)  # leapfrog steps per HMC transition
    chains: int = bounded(16, minimum=1)  # independent runs per example, averaged in probability


@dataclass
class LikelihoodSettings:
    method: str = choice(METHODS, "importance")  # ais: a check, far slower
    k: int = bounded(1000, minimum=1)  # importance samples per example
    num_samples: int = bounded(1000, minimum=0)  # first N test examples (10000: all; 0: none)
    batch_size: int = bounded(20, minimum=1)  # examples decoded together (x K samples)
    ais: AISSettings = field(default_factory=AISSettings)


@dataclass
class EvaluationSettings:
    seed: int = 0
    batch_size: int = bounded(1000, minimum=1)  # examples per batch of the other metrics
    likelihood: LikelihoodSettings = field(default_factory=LikelihoodSettings)
    joint_samples: int = bounded(10_000, minimum=1)  # prior samples for joint coherence
    # Test examples and prior samples per Frechet distance in classifier features (0: none).
    fd_samples: int = bounded(5000, minimum=0)
    figures: bool = True


def resolve_settings(settings: EvaluationSettings | dict[str, Any] | None) -> EvaluationSettings:
    """Settings with every missing value at its default, type-checked."""
    if isinstance(settings, EvaluationSettings):
        return settings
    merged = OmegaConf.merge(OmegaConf.structured(EvaluationSettings), settings or {})
    return OmegaConf.to_object(merged)

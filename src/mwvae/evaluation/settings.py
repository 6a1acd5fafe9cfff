"""The evaluation's settings and their defaults, in one place: the config
schema of `evaluation` (train) and `settings` (eval) is this dataclass, and
`evaluate` fills whatever a caller leaves out from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf


@dataclass
class AISSettings:
    """Annealed importance sampling (`likelihood.method=ais`)."""

    steps: int = 500  # intermediate distributions from the prior to the posterior
    leapfrog: int = 10  # leapfrog steps per HMC transition
    chains: int = 16  # independent runs per example, averaged in probability


@dataclass
class LikelihoodSettings:
    method: str = "importance"  # importance | ais (a check: far slower)
    k: int = 1000  # importance samples per example
    num_samples: int = 1000  # first N test examples (10000: all; 0: no likelihoods)
    batch_size: int = 20  # examples decoded together (x K samples)
    ais: AISSettings = field(default_factory=AISSettings)


@dataclass
class EvaluationSettings:
    seed: int = 0
    batch_size: int = 1000  # examples per batch of the other metrics
    likelihood: LikelihoodSettings = field(default_factory=LikelihoodSettings)
    joint_samples: int = 10_000  # prior samples for joint coherence
    figures: bool = True


def resolve_settings(settings: EvaluationSettings | dict[str, Any] | None) -> EvaluationSettings:
    """Settings with every missing value at its default, type-checked."""
    if isinstance(settings, EvaluationSettings):
        return settings
    merged = OmegaConf.merge(OmegaConf.structured(EvaluationSettings), settings or {})
    return OmegaConf.to_object(merged)

"""The ELBO-plus-alignment LightningModule that every model of the framework extends.

The base owns the modalities (an encoder, a decoder and a likelihood each),
the options (`Options`, see `mwvae.options`), the ELBO of the fused
posterior, the W2 alignment between unimodal posteriors (logged by every
model; MW-VAE optimises it), one step shared by training, validation and
test, and the public inference API (`posterior`, `reconstruct`, `decode` at a
point of the whole latent, `proposal_components` for the likelihood
estimates). A model overrides only what differs: how posteriors are fused,
which ELBO terms it optimises, what it adds to them.

Data flows one way: batch dict -> encoders of the present modalities ->
unimodal posteriors -> (joint posterior, alignment) -> latent samples ->
decoders -> per-modality likelihoods -> named loss terms -> logged metrics.

Training batches may hide modalities in some examples (`mask/<m>`, see
`mwvae.presence`): every term then counts only what each example observes.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from mwvae.callbacks import logs_training_step
from mwvae.checkpoints import class_name
from mwvae.gaussians import (
    DiagGaussian,
    kl_to_standard_normal,
    mean_pairwise_w2_squared,
)
from mwvae.likelihoods import Categorical, make_likelihood
from mwvae.options import Configurable, bounded
from mwvae.presence import Mask, Presence, batch_mean, both
from mwvae.seeds import derived_seed

Batch = Mapping[str, Tensor]


class UnsupportedSubsetError(ValueError):
    """The model has no posterior for this subset of modalities."""


class IncompleteDataError(ValueError):
    """The model cannot train on examples that miss modalities."""


@dataclass
class LossTerms:
    """The named terms of one step's objective, each averaged over the batch."""

    loss: Tensor
    recon: dict[str, Tensor] = field(default_factory=dict)
    kl: dict[str, Tensor] = field(default_factory=dict)
    w2: Tensor | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)  # model-specific terms

    def as_metrics(self) -> dict[str, Tensor]:
        """Slash-named metrics: `loss`, `recon/<m>`, `kl/<m>`, `elbo`, `w2`, extras."""
        metrics = {"loss": self.loss}
        metrics.update({f"recon/{m}": v for m, v in self.recon.items()})
        metrics.update({f"kl/{m}": v for m, v in self.kl.items()})
        # The negative ELBO as the paper plots it: reconstruction plus latent loss.
        metrics["elbo"] = sum(self.recon.values()) + sum(self.kl.values())
        if self.w2 is not None:
            metrics["w2"] = self.w2
        metrics.update(self.extra)
        return metrics


class RunningMeans:
    """Batch-size-weighted means of a fixed set of scalar tensors, kept on
    their device (no host synchronisation per step)."""

    def __init__(self):
        self.names: list[str] = []
        self.sums: Tensor | None = None
        self.count = 0

    def add(self, values: dict[str, Tensor], batch_size: int) -> None:
        if self.sums is None:
            self.names = list(values)
        stacked = torch.stack([values[name].detach() for name in self.names]) * batch_size
        self.sums = stacked if self.sums is None else self.sums + stacked
        self.count += batch_size

    def compute(self) -> dict[str, Tensor]:
        if self.sums is None:
            return {}
        return dict(zip(self.names, self.sums / self.count, strict=True))


def masks(posteriors: Mapping[str, DiagGaussian], presence: Presence | None) -> list[Mask] | None:
    """The presence mask of each posterior's modality, in order (None: all observed)."""
    return None if presence is None else presence.restricted(posteriors)


def nonempty_subsets(names: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of `names`, smallest first."""
    return [s for size in range(1, len(names) + 1) for s in itertools.combinations(names, size)]


class MultimodalVAE(Configurable, pl.LightningModule):
    """Base multimodal VAE: the negative ELBO of the fused posterior.

    Args:
        modalities: name -> {encoder, decoder, likelihood, weight}; encoder and
            decoder are Hydra `_target_` specs that receive the code's size.
        latent_dim: size of the latent code.
        optimizer: a Hydra spec with `_partial_: true` that receives the
            parameters (the config's `optimizer` group; None: torch's Adam
            with its defaults).
        **options: the fields of the model's `Options` (below, and a
            subclass's own), checked by `parse_options`.

    A subclass declares its options as `class Options(<Parent>.Options)`
    and reads them as `self.options.<name>`; they are set, with
    `self.latent_dim`, before any hook that builds networks runs.
    """

    @dataclass
    class Options:
        beta: float = bounded(1.0, minimum=0)  # weight of the KL terms once warm-up is over
        # beta rises linearly from 0 over this many epochs (KL warm-up keeps the
        # experts from collapsing to the prior).
        kl_warmup_epochs: float = bounded(0.0, minimum=0)

    # Whether the objective is defined for examples that miss modalities (a
    # joint encoder needs them all), and whether the model reads one modality.
    trains_on_incomplete_data = True
    unimodal = False
    # The model's name in the papers, for figure titles (each model names itself).
    display_name = "multimodal VAE"

    def __init__(
        self,
        modalities: dict[str, dict[str, Any]],
        latent_dim: int,
        optimizer: dict[str, Any] | None = None,
        **options: Any,
    ):
        super().__init__()
        self.options = self.parse_options(options, "model", modalities=modalities)
        self.latent_dim = latent_dim
        self.optimizer_spec = optimizer
        # What rebuilds the model from a checkpoint alone: the options resolved,
        # and copies of the caller's specs (editing one must not edit the other).
        self.save_hyperparameters(
            {
                "modalities": copy.deepcopy(modalities),
                "latent_dim": latent_dim,
                "optimizer": copy.deepcopy(optimizer),
                **dataclasses.asdict(self.options),
            }
        )
        modalities = self.used_modalities(modalities)
        self.modality_names = list(modalities)
        self.encoders = self.build_encoders(modalities)
        self.decoders = nn.ModuleDict(
            {
                m: instantiate(spec["decoder"], latent_dim=self.code_dim(m))
                for m, spec in modalities.items()
            }
        )
        self.likelihoods = {
            m: make_likelihood(spec["likelihood"], self.decoders[m])
            for m, spec in modalities.items()
        }
        self.recon_weights = {m: float(spec.get("weight", 1.0)) for m, spec in modalities.items()}
        self._epoch_means = RunningMeans()
        # The last training step's metrics, for `mwvae.callbacks.NonFiniteGuard`.
        self.last_training_terms: dict[str, Tensor] = {}
        # The run's seed (what `pl.seed_everything` set), kept in checkpoints: the
        # random draws of every step derive from it, not from the RNG's history.
        self.rng_seed = torch.initial_seed()
        # The resolved config of the run that trains it (`mwvae.train`), saved in
        # its checkpoints: `mwvae.eval` rebuilds the data from the file alone.
        self.run_config: dict[str, Any] | None = None

    def used_modalities(self, modalities: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The data's modalities this model reads (all of them; VAE: one)."""
        return modalities

    def compile_networks(self, **options: Any) -> None:
        """torch.compile every encoder and decoder in place (`nn.Module.compile`),
        with torch.compile's `options`. The objective around them stays eager:
        it reads the step and the epoch, on which compiled code would specialise.
        The parameters keep their names, so checkpoints load into an uncompiled
        model."""
        for network in [*self.encoders.values(), *self.decoders.values()]:
            network.compile(**options)

    def code_dim(self, modality: str) -> int:
        """Size of the code that modality's encoder outputs and decoder reads."""
        return self.latent_dim

    def build_encoders(self, modalities: dict[str, dict[str, Any]]) -> nn.ModuleDict:
        """One encoder q(z | x_m) per modality."""
        return nn.ModuleDict(
            {
                m: instantiate(spec["encoder"], latent_dim=self.code_dim(m))
                for m, spec in modalities.items()
            }
        )

    # ------------------------------------------------------------------ inference
    def check_observed(self, observed: Batch) -> None:
        """Fail clearly on an empty or unknown set of observed modalities, or
        one this model cannot infer from."""
        unknown = set(observed) - set(self.modality_names)
        if unknown:
            raise KeyError(
                f"unknown modalities {sorted(unknown)}; this model has {self.modality_names}"
            )
        if not observed:
            raise ValueError("observe at least one modality")
        if not self.can_infer_from(observed):
            raise UnsupportedSubsetError(
                f"{type(self).__name__} cannot infer from {sorted(observed)} alone; "
                f"observe all of {self.modality_names}"
            )

    def can_infer_from(self, observed: Iterable[str]) -> bool:
        """Whether `posterior` is defined for this subset of modalities."""
        return True

    def encode(self, observed: Batch) -> dict[str, DiagGaussian]:
        """The unimodal posterior q(z | x_m) of each observed modality."""
        return {m: self.encoders[m](x) for m, x in observed.items()}

    def fuse(
        self, posteriors: dict[str, DiagGaussian], presence: Presence | None = None
    ) -> DiagGaussian:
        """The joint posterior of the observed modalities (per example, of the
        posteriors whose modality it observes). With one posterior it is that
        one; a model with several encoders says how it combines them."""
        if len(posteriors) == 1:
            return next(iter(posteriors.values()))
        raise NotImplementedError(f"{type(self).__name__} does not define how to fuse posteriors")

    def posterior(self, observed: Batch) -> DiagGaussian:
        """The Gaussian posterior for the observed subset of modalities."""
        self.check_observed(observed)
        return self.fuse(self.encode(observed))

    def decode(self, z: Tensor, modalities: Iterable[str] | None = None) -> dict[str, Tensor]:
        """The likelihood parameters (logits; means for Gaussian modalities) of
        the given modalities, every one by default, at a point `z` of the
        model's whole latent (`prior_dim` values, prior N(0, I)): the space
        `proposal_components` covers and `torch.randn(n, model.prior_dim)` samples."""
        names = self.modality_names if modalities is None else modalities
        return {m: self.decoders[m](z) for m in names}

    @torch.no_grad()
    def reconstruct(
        self, observed: Batch, sample: bool = False, style: str | None = None
    ) -> dict[str, Tensor]:
        """Every modality decoded from the posterior of the observed ones:
        pixel means for images, class probabilities for labels. The posterior
        mean is decoded unless `sample`. `style` chooses how a model with
        private codes fills those of unobserved modalities (one of
        `imputation_styles`; None: the model's configured one)."""
        self.check_style(style)
        z = self.posterior(observed).sample_or_mean(sample)
        return {m: self.likelihoods[m].mean(logits) for m, logits in self.decode(z).items()}

    # ------------------------------------------------------------------ private codes
    @property
    def private_modalities(self) -> list[str]:
        """The modalities with a private code of their own beside the shared one."""
        return []

    @property
    def imputation_styles(self) -> tuple[str, ...]:
        """The ways `reconstruct` can fill the private code of an unobserved
        modality (none: the model has no private codes)."""
        return ()

    def check_style(self, style: str | None) -> None:
        if style is not None and style not in self.imputation_styles:
            raise ValueError(
                f"style={style!r}: {type(self).__name__} imputes private codes with "
                f"{list(self.imputation_styles) or 'no style (it has none)'}"
            )

    # ------------------------------------------------------------------ likelihood
    def proposal_subsets(self, names: list[str]) -> list[list[str]]:
        """The subsets of the observed `names` whose posteriors the likelihood
        proposal mixes: each one alone, then all of them (last), those the
        model can infer from."""
        subsets = [[m] for m in names] + ([names] if len(names) > 1 else [])
        return [subset for subset in subsets if self.can_infer_from(subset)]

    def proposal_components(self, observed: Batch) -> list[DiagGaussian]:
        """The Gaussians over the model's whole latent (prior N(0, I)) that
        the likelihood estimates mix, with the prior, into one importance
        proposal: the posterior of each of `proposal_subsets`, the fused
        posterior of every observed modality last."""
        return [
            self.posterior({m: observed[m] for m in subset})
            for subset in self.proposal_subsets(list(observed))
        ]

    @property
    def prior_dim(self) -> int:
        """Size of the whole latent, whose prior is N(0, I)."""
        return self.latent_dim

    # ------------------------------------------------------------------ objective
    @property
    def beta_now(self) -> float:
        """beta, annealed linearly from 0 during the first `kl_warmup_epochs`
        of training; validation and test always use the target beta, so that
        `val/loss` compares epochs (the best checkpoint is chosen by it) and a
        warm-up epoch cannot win by a smaller KL weight."""
        warmup = self.options.kl_warmup_epochs
        if warmup <= 0 or self._trainer is None or not self.training:
            return self.options.beta
        steps_per_epoch = max(1, self.trainer.num_training_batches)
        progress = self.global_step / (warmup * steps_per_epoch)
        return self.options.beta * min(1.0, progress)

    def reconstruction_nll(
        self, batch: Batch, m: str, z: Tensor, examples: Mask = None, share: Tensor | int = 1
    ) -> Tensor:
        """Weighted -log p(x_m | z) averaged over the batch, each example's term
        divided by its `share` (e.g. how many samples it averages over); the
        examples outside `examples` count 0."""
        nll = self.likelihoods[m].nll(self.decoders[m](z), batch[m])
        if not isinstance(share, int) or share != 1:
            nll = nll / share
        return self.recon_weights[m] * batch_mean(nll, examples)

    def fused_elbo(
        self,
        batch: Batch,
        posteriors: dict[str, DiagGaussian],
        presence: Presence,
        examples: Mask = None,
    ) -> LossTerms:
        """The negative ELBO of the fused posterior of `posteriors` over
        `examples`: each modality of `batch` an example observes decoded from
        one sample of q(z | what it observes), one KL term (`kl/joint`)."""
        q = self.fuse(posteriors, presence)
        z = q.rsample()
        recon = {
            m: self.reconstruction_nll(batch, m, z, both(examples, presence.of_modality(m)))
            for m in batch
        }
        kl = batch_mean(kl_to_standard_normal(q), examples)
        return LossTerms(
            loss=sum(recon.values()) + self.beta_now * kl, recon=recon, kl={"joint": kl}
        )

    def elbo_terms(
        self, batch: Batch, posteriors: dict[str, DiagGaussian], presence: Presence
    ) -> LossTerms:
        """The model's negative ELBO (the base's: of the joint posterior, over
        the examples that observe anything)."""
        return self.fused_elbo(batch, posteriors, presence, presence.any_of(batch))

    def aligned_parts(self, posteriors: dict[str, DiagGaussian]) -> dict[str, DiagGaussian]:
        """The parts of the unimodal posteriors that W2 compares: all of them
        (FMW-VAE: the shared parts)."""
        return posteriors

    def alignment(self, posteriors: dict[str, DiagGaussian], presence: Presence) -> Tensor:
        """Mean pairwise W2^2 between the unimodal posteriors each example has
        (0 for one with fewer than two), batch-averaged: `w2` wherever it is
        reported, logged for every model, optimised only by those that say so
        (MW-VAE)."""
        return mean_pairwise_w2_squared(
            list(self.aligned_parts(posteriors).values()), masks(posteriors, presence)
        ).mean()

    def objective(self, batch: Batch) -> LossTerms:
        """The loss of one batch: the model's ELBO terms, with the alignment
        of its unimodal posteriors logged as `w2`."""
        observed = {m: x for m, x in batch.items() if m in self.decoders}
        presence = Presence.of(batch, observed)
        if not (presence.complete or self.trains_on_incomplete_data):
            from mwvae.config import catalog  # the configs' list of models, read only here

            raise IncompleteDataError(
                f"{type(self).__name__} cannot train on examples that miss modalities "
                f"(the batch has presence masks for {sorted(presence.masks)}); train it on complete "
                "data (data.paired_fraction=1.0) or choose a model that can: "
                + ", ".join(catalog.models_that_train_on_incomplete_data())
            )
        posteriors = self.encode(observed)
        terms = self.elbo_terms(observed, posteriors, presence)
        if len(posteriors) >= 2:
            terms.w2 = self.alignment(posteriors, presence)
        return terms

    # ------------------------------------------------------------------ metrics
    @torch.no_grad()
    def cross_modal_coherence(self, batch: Batch) -> dict[str, Tensor]:
        """`coherence/<source>_to_<target>` for every categorical target and
        every other modality the model can infer from: the class of
        `reconstruct({source})` against the true one. The same key and formula
        as the evaluation's (`mwvae.evaluation.coherence`), on validation
        batches during training."""
        accuracies = {}
        for target, likelihood in self.likelihoods.items():
            if not isinstance(likelihood, Categorical) or target not in batch:
                continue
            for source in self.modality_names:
                if source == target or source not in batch or not self.can_infer_from([source]):
                    continue
                predicted = self.reconstruct({source: batch[source]})[target].argmax(-1)
                accuracies[f"coherence/{source}_to_{target}"] = (
                    (predicted == batch[target]).float().mean()
                )
        return accuracies

    # ------------------------------------------------------------------ Lightning
    def _shared_step(self, batch: Batch, stage: str) -> Tensor:
        terms = self.objective(batch)
        metrics = terms.as_metrics()
        batch_size = len(next(iter(batch.values())))
        if stage == "train":
            # Tensors: whether to read them (a host synchronisation) is the guard's call.
            self.last_training_terms = {k: v.detach() for k, v in metrics.items()}
            self._log_training(metrics, batch_size)
        else:
            if stage == "val":  # the test split's coherences are the evaluation's
                metrics.update(self.cross_modal_coherence(batch))
            self.log_dict(
                {f"{stage}/{k}": v for k, v in metrics.items()},
                batch_size=batch_size,
                sync_dist=self.distributed,
            )
        return terms.loss

    def _log_training(self, metrics: dict[str, Tensor], batch_size: int) -> None:
        """Training metrics reach Lightning only at the logging steps
        (`logs_training_step`): each `self.log` call costs far more than the
        tensor additions that keep the epoch means here."""
        self._epoch_means.add(metrics, batch_size)
        if self._trainer is None or not logs_training_step(self.trainer, self.global_step + 1):
            return
        metrics["beta"] = torch.tensor(self.beta_now)
        self.log_dict({f"train/{k}": v for k, v in metrics.items()}, on_step=True, on_epoch=False)

    # Random streams. Sampling uses torch's global RNG (rsample), so it is
    # reseeded from (run seed, stage, step or epoch, rank) where each stage
    # starts: a run resumed from any checkpoint draws what an uninterrupted run
    # draws, and validation never depends on what ran before it. `manual_seed`
    # sets the generators' state on the host: no device synchronisation.
    def reseed(self, *parts: int | str) -> None:
        seed = derived_seed(self.rng_seed, *parts, self.global_rank)
        # Only the generators this module draws from: `torch.manual_seed` seeds
        # every backend's and cost ~0.7 ms a step here (5% of a small model's step).
        torch.default_generator.manual_seed(seed)
        if self.device.type != "cpu":
            torch.get_device_module(self.device.type).manual_seed(seed)
        self.on_reseed(seed)

    def on_reseed(self, seed: int) -> None:
        """Reseed the model's own generators (none in the base)."""

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        self.reseed("train", self.global_step)

    def on_validation_epoch_start(self) -> None:
        self.reseed("val", self.current_epoch)

    def on_test_epoch_start(self) -> None:
        self.reseed("test", self.current_epoch)

    def on_train_epoch_start(self) -> None:
        self._epoch_means = RunningMeans()

    def on_train_epoch_end(self) -> None:
        """Epoch means as `train/<term>_epoch` (Lightning's own suffix)."""
        means = self._epoch_means.compute()
        self.log_dict(
            {f"train/{k}_epoch": v for k, v in means.items()},
            on_step=False,
            on_epoch=True,
            sync_dist=self.distributed,
        )

    @property
    def distributed(self) -> bool:
        """Whether several processes share the data (DDP): epoch metrics are
        then reduced across them, each rank having seen only its shard. Only
        then: a reduction costs a collective per metric. Per-step training
        metrics stay rank zero's own (its loggers write them)."""
        return self._trainer is not None and self.trainer.world_size > 1

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def configure_optimizers(self):
        if self.optimizer_spec is None:
            return torch.optim.Adam(self.parameters())  # torch's defaults
        return instantiate(self.optimizer_spec)(params=self.parameters())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lets `mwvae.load_model` rebuild the right class from the file alone.
        checkpoint["mwvae_model_class"] = class_name(self)
        checkpoint["mwvae_rng_seed"] = self.rng_seed
        if self.run_config is not None:
            checkpoint["mwvae_run_config"] = self.run_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A resumed run keeps the random streams of the run it continues.
        self.rng_seed = checkpoint.get("mwvae_rng_seed", self.rng_seed)

"""Our `mvae_poe`, `mopoe`, `jmvae` and `mmvae` beside MultiVae's MVAE, MoPoE,
JMVAE and MMVAE: the same networks, initialisation and data.

    make peer-multivae ARGS="--seeds 0,1,2 --epochs 5 [--model mopoe|jmvae|mmvae]"
    .peer-env/bin/python experiments/multivae_side_by_side.py [--model mvae_poe|mopoe|jmvae|mmvae]
        [--seeds 0,1,2] [--epochs 5] [--threads 1] [--override KEY=VALUE ...] [--out RECORD]
    python experiments/multivae_side_by_side.py --table RECORD [RECORD ...]

MultiVae is never a dependency: `make peer-multivae` installs it (1.0.3) into a
throwaway environment, `.peer-env/`, that also sees this project's packages.
For each seed, one initialised set of our `mvae_poe` networks (MNIST
binarised at 0.5, latent 20, the default networks, label weight 50, KL
warm-up over `mvae_poe`'s 5 epochs) is trained twice on the same 50k
training images: by our Trainer (`mwvae.train`, the best checkpoint by
`val/loss`) and by MultiVae's BaseTrainer with its objective (MVAE: the joint
and unimodal ELBOs; its model kept as its trainer keeps it: the last until
the warm-up ends, then the best on the validation split). `--model mopoe`
trains our `mopoe` as MultiVae's MoPoE computes it (`PEERS`: one subset's
sample decoded per example, the prior an expert of the whole set's product
only) beside MultiVae's MoPoE, `--model jmvae` our `jmvae` (its joint
encoder too) beside MultiVae's JMVAE, both without warm-up, `--model mmvae`
our `mmvae` beside MultiVae's MMVAE set to compute the same objective
(`PEER_OPTIONS`: one sample per expert, the plain IWAE loss, which at K = 1
is our stratified ELBO, Gaussian posteriors and a fixed N(0, I) prior, where
MultiVae's defaults are K = 10 with DReG gradients and Laplace distributions
with a learned prior scale). The trained
networks of both are then scored by our evaluation on the same test set, so
the only differences left are the two objectives' code and the two training
loops. `--override` changes both (Hydra overrides of the shared config, e.g.
the label networks). Prints the table (mean +- std over seeds) and writes
RECORD (JSON); `--table` tabulates records (no MultiVae needed).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mwvae.config import compose_config
from mwvae.evaluation.suite import evaluate
from mwvae.machine import machine
from mwvae.models import JMVAE, MMVAE, MoPoE
from mwvae.models.jmvae import JOINT
from mwvae.training import seeded_model_and_data, train
from records import cell, commit  # experiments/ is the script's folder

ROOT = Path(__file__).resolve().parents[1]
METRICS = {
    "test/coherence/image_to_label": "image -> label",
    "test/coherence/label_to_image": "label -> image",
    "test/coherence/joint": "joint coherence",
}
EVALUATION = [  # what both are scored by: no likelihoods, no Frechet distances
    "evaluation.likelihood.num_samples=0",
    "evaluation.joint_samples=1000",
    "evaluation.fd_samples=0",
]


def multivae():
    try:
        import multivae  # noqa: F401
    except ImportError:
        raise SystemExit(
            "MultiVae is not importable here: run `make peer-multivae` (it installs MultiVae "
            "1.0.3 into .peer-env/, never into this project's environment)"
        ) from None
    import multivae.models
    from multivae.models.nn import BaseJointEncoder
    from multivae.models.nn.default_architectures import BaseDecoder, BaseEncoder
    from multivae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.models.base.base_utils import ModelOutput

    networks = BaseEncoder, BaseDecoder, BaseJointEncoder
    return multivae.models, networks, BaseTrainer, BaseTrainerConfig, ModelOutput


# Per model: the overrides that make ours compute what MultiVae's computes.
PEERS = {
    "mvae_poe": [],
    "mopoe": ["model.subsets=sampled", "model.prior_expert=whole_set"],
    "jmvae": [],  # MultiVae anneals alpha's term with the KL one; neither warms up here
    "mmvae": [],
}
# Per model: MultiVae's options that make its model compute ours (MMVAE's
# defaults: K=10, loss="dreg_looser", Laplace posteriors and prior, learned prior).
PEER_OPTIONS = {
    "mmvae": dict(K=1, loss="iwae_looser", prior_and_posterior_dist="normal", learn_prior=False),
}


def config(
    seed: int,
    epochs: int,
    output_dir: Path,
    subset: str | None = None,
    overrides=(),
    model: str = "mvae_poe",
):
    return compose_config(
        [
            *([f"data.subset={subset}"] if subset else []),
            *overrides,
            f"model={model}",
            *PEERS[model],
            "data.binarize=threshold",
            f"seed={seed}",
            f"trainer.max_epochs={epochs}",
            "logger=none",
            "figures=false",
            "callbacks.progress_bar.refresh_rate=0",
            f"paths.root_dir={ROOT}",
            f"paths.output_dir={output_dir}",
            *EVALUATION,
        ]
    )


def train_ours(cfg) -> tuple[dict[str, float], float]:
    metrics, _ = train(cfg)
    return metrics, metrics["time/fit_seconds"]  # fit with its validation, as MultiVae's


def peer_model(model, datamodule, cfg):
    """MultiVae's model of `model`'s kind around `model`'s own networks (the
    same modules, not copies), and a function that gives MultiVae's dataset of
    a split of `datamodule` (set up)."""
    models, networks, _, _, ModelOutput = multivae()
    BaseEncoder, BaseDecoder, BaseJointEncoder = networks
    from multivae.data.datasets.base import MultimodalBaseDataset

    class Encoder(BaseEncoder):  # our encoder, MultiVae's interface (labels arrive one-hot)
        def __init__(self, inner, one_hot: bool):
            super().__init__()
            self.inner, self.one_hot = inner, one_hot

        def forward(self, x):
            q = self.inner(x.argmax(-1) if self.one_hot else x)
            return ModelOutput(embedding=q.mu, log_covariance=q.logvar)

    class Decoder(BaseDecoder):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, z):
            return ModelOutput(reconstruction=self.inner(z))

    class JointEncoder(BaseJointEncoder):  # our JMVAE's joint encoder, MultiVae's interface
        def __init__(self, inner, latent_dim: int):
            super().__init__()
            self.inner, self.latent_dim = inner, latent_dim

        def forward(self, x: dict):
            q = self.inner({"image": x["image"], "label": x["label"].argmax(-1)})
            return ModelOutput(embedding=q.mu, log_covariance=q.logvar)

    classes = cfg.data.modalities.label.encoder.num_classes

    def dataset(split: str):
        tensors = datamodule.splits[split]
        labels = tensors["label"]
        one_hot = F.one_hot(labels, classes).float()
        return MultimodalBaseDataset(
            data={"image": tensors["image"], "label": one_hot}, labels=labels
        )

    options = model.options
    shared = dict(
        n_modalities=2,
        latent_dim=model.latent_dim,
        input_dims={
            "image": tuple(datamodule.splits["train"]["image"].shape[1:]),
            "label": (classes,),
        },  # fmt: skip
        decoders_dist={"image": "bernoulli", "label": "categorical"},
        uses_likelihood_rescaling=True,
        rescale_factors={m: float(w) for m, w in model.recon_weights.items()},
        beta=options.beta,
    )
    networks = {
        "encoders": {m: Encoder(model.encoders[m], m == "label") for m in ("image", "label")},
        "decoders": {m: Decoder(model.decoders[m]) for m in ("image", "label")},
    }
    warmup = int(options.kl_warmup_epochs)
    if isinstance(model, MoPoE):
        peer = models.MoPoE(models.MoPoEConfig(**shared), **networks)
    elif isinstance(model, JMVAE):
        joint = JointEncoder(model.encoders[JOINT], model.latent_dim)
        peer_config = models.JMVAEConfig(**shared, alpha=options.alpha, warmup=warmup)
        peer = models.JMVAE(peer_config, **networks, joint_encoder=joint)
    elif isinstance(model, MMVAE):
        peer = models.MMVAE(models.MMVAEConfig(**shared, **PEER_OPTIONS["mmvae"]), **networks)
    else:
        peer = models.MVAE(models.MVAEConfig(**shared, warmup=warmup), **networks)
    return peer, dataset


def train_multivae(cfg, output_dir: Path) -> tuple[dict[str, float], float]:
    _, _, BaseTrainer, BaseTrainerConfig, _ = multivae()
    model, datamodule = seeded_model_and_data(cfg)  # the weights `train` starts from
    datamodule.setup()
    peer, dataset = peer_model(model, datamodule, cfg)
    trainer = BaseTrainer(
        peer,
        train_dataset=dataset("train"),
        eval_dataset=dataset("val"),
        training_config=BaseTrainerConfig(
            output_dir=str(output_dir),
            per_device_train_batch_size=datamodule.options.batch_size,
            per_device_eval_batch_size=datamodule.options.eval_batch_size,
            num_epochs=cfg.trainer.max_epochs,
            learning_rate=cfg.optimizer.lr,
            optimizer_cls="Adam",
            seed=cfg.seed,
            no_cuda=True,
        ),
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    kept = trainer._best_model  # what MultiVae's trainer keeps, by its rule
    scored = copy.deepcopy(model)
    for m in ("image", "label"):
        scored.encoders[m].load_state_dict(kept.encoders[m].inner.state_dict())
        scored.decoders[m].load_state_dict(kept.decoders[m].inner.state_dict())
    if isinstance(scored, JMVAE):
        scored.encoders[JOINT].load_state_dict(kept.joint_encoder.inner.state_dict())
    return evaluate(scored, datamodule, dict(cfg.evaluation)), seconds


def rows(record: dict) -> list[str]:
    results, setting = record["seeds"], ", ".join(record.get("overrides", [])) or "defaults"
    model = record.get("model", "mvae_poe")  # the records before --model
    ours = ", ".join(record.get("model_overrides", []))  # how ours was set to compute the same
    theirs = ", ".join(f"{k}={v}" for k, v in record.get("peer_options", {}).items())
    names = {"mwvae": f"{model} ({ours})" if ours else model}
    names["multivae"] = f"{model} ({theirs})" if theirs else model
    lines = []
    for side in ("mwvae", "multivae"):
        cells = [cell([r[side]["metrics"][k] for r in results]) for k in METRICS]
        cells.append(cell([r[side]["fit_seconds"] for r in results]))
        lines.append(
            f"| {names[side]} | {side} | {setting} | {record['epochs']} | {len(results)} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def table(records: list[dict]) -> str:
    lines = [
        "| model | implementation | networks | epochs | seeds | "
        + " | ".join(METRICS.values())
        + " | fit seconds |",
        "|---|---|---|---|---|" + "---|" * (len(METRICS) + 1),
    ]
    return "\n".join(lines + [row for record in records for row in rows(record)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", choices=list(PEERS), default="mvae_poe")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--subset", help="e.g. {train:1000,val:200,test:200}: a quick check")
    parser.add_argument("--override", action="append", default=[], help="for both, e.g. "
                        "data.modalities.label.encoder.hidden_dims=[64,64]")  # fmt: skip
    parser.add_argument("--table", type=Path, nargs="+", help="tabulate these records")
    args = parser.parse_args(argv)
    if args.table:
        print(table([json.loads(p.read_text()) for p in args.table]))
        return
    multivae()  # fail before training anything
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in map(int, args.seeds.split(",")):
            folder = Path(scratch) / f"seed{seed}"
            setting = (args.subset, args.override, args.model)
            ours, ours_seconds = train_ours(config(seed, args.epochs, folder / "ours", *setting))
            peer_cfg = config(seed, args.epochs, folder / "peer", *setting)
            peer, peer_seconds = train_multivae(peer_cfg, folder / "peer")
            results.append(
                {
                    "seed": seed,
                    "mwvae": {
                        "metrics": {k: ours[k] for k in METRICS},
                        "fit_seconds": ours_seconds,
                    },
                    "multivae": {
                        "metrics": {k: peer[k] for k in METRICS},
                        "fit_seconds": peer_seconds,
                    },
                }
            )
            print(f"seed {seed}: " + json.dumps(results[-1]), flush=True)
    record = {"commit": commit(), "date": datetime.date.today().isoformat()}
    record |= {"machine": machine(), "model": args.model, "model_overrides": PEERS[args.model]}
    if args.model in PEER_OPTIONS:
        record["peer_options"] = PEER_OPTIONS[args.model]
    record |= {"epochs": args.epochs, "threads": args.threads}
    record |= {"overrides": args.override, "seeds": results}
    print(table([record]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()

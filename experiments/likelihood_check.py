"""How tight are a checkpoint's likelihood estimates? The evaluation's
estimator against an independent reference, the old single-posterior
estimate, and AIS, on the first test examples.

    python experiments/likelihood_check.py outputs/runs/<run>/checkpoints/last.ckpt \
        [--examples 100] [--k 1000] [--reference-k 20000] [--ais-examples 20] [--json PATH]

- `estimator`: `estimate_log_likelihoods` with K (the evaluation's default).
- `reference`: a defensive mixture of the model's `proposal_components` and
  the prior (without the estimator's widened copies), written here with
  torch.distributions (components drawn at random per sample, not
  stratified; its own code path), K = `--reference-k`.
- `posterior_only`: the estimate before issue 15, K samples of the model's
  posterior for the scored subset alone (the last of its
  `proposal_components`: the fused posterior of the whole subset), no mixture.
- `ais`: annealed importance sampling on the first `--ais-examples`.
Means over examples with standard errors, in nats, for every subset.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
from pathlib import Path

import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from mwvae import load_model
from mwvae.eval import run_datamodule
from mwvae.evaluation.ais import ais_log_likelihood
from mwvae.evaluation.likelihood import (
    PRIOR_WEIGHT,
    estimate_log_likelihoods,
    inferable_subsets,
    subset_name,
)
from mwvae.evaluation.suite import whole
from records import commit  # experiments/ is the script's folder


def log_likelihoods(model, batch, z):
    """log p(x_m | z) of every modality, for z of shape (n, D), batch of one example."""
    outputs = model.decode(z)
    return {
        m: -model.likelihoods[m].nll(out, batch[m].expand(len(z), *batch[m].shape[1:]))
        for m, out in outputs.items()
    }


@torch.no_grad()
def reference(model, batch, subsets, k, chunk=2000, seed=0):
    """Per example, an importance estimate with a randomly drawn mixture component."""
    torch.manual_seed(seed)
    found = {s: [] for s in subsets}
    n = len(next(iter(batch.values())))
    for i in range(n):
        one = {m: t[i : i + 1] for m, t in batch.items()}
        parts = model.proposal_components(one)
        mus = torch.cat([q.mu for q in parts] + [torch.zeros_like(parts[0].mu)])
        stds = torch.cat([q.std for q in parts] + [torch.ones_like(parts[0].mu)])
        weights = torch.tensor([(1 - PRIOR_WEIGHT) / len(parts)] * len(parts) + [PRIOR_WEIGHT])
        q = MixtureSameFamily(Categorical(weights), Independent(Normal(mus, stds), 1))
        log_w = {s: [] for s in subsets}
        for start in range(0, k, chunk):
            z = q.sample((min(chunk, k - start),))
            base = Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z)
            log_lik = log_likelihoods(model, one, z)
            for s in subsets:
                log_w[s].append(base + sum(log_lik[m] for m in s))
        for s in subsets:
            found[s].append(torch.logsumexp(torch.cat(log_w[s]), 0) - math.log(k))
    return {s: torch.stack(v) for s, v in found.items()}


@torch.no_grad()
def posterior_only(model, batch, subsets, k, chunk=100, seed=0):
    """The pre-issue-15 estimate: the scored subset's own posterior as proposal."""
    torch.manual_seed(seed)
    found = {}
    for s in subsets:
        q = model.proposal_components({m: batch[m] for m in s})[-1]  # the subset's own
        log_w = []
        for start in range(0, k, chunk):
            z = q.mu + q.std * torch.randn(min(chunk, k - start), *q.mu.shape)
            w = Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z)
            outputs = model.decode(z.flatten(0, 1), s)
            for m in s:
                target = batch[m].unsqueeze(0).expand(len(z), *batch[m].shape).flatten(0, 1)
                w = w - model.likelihoods[m].nll(outputs[m], target).view(len(z), -1)
            log_w.append(w)
        found[s] = torch.logsumexp(torch.cat(log_w), 0) - math.log(k)
    return found


def summary(values: torch.Tensor) -> dict[str, float]:
    return {"mean": values.mean().item(), "se": values.std().item() / math.sqrt(len(values))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--reference-k", type=int, default=20_000)
    parser.add_argument("--ais-examples", type=int, default=20)
    parser.add_argument("--ais-steps", type=int, default=500)
    parser.add_argument("--ais-chains", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = load_model(args.checkpoint)
    datamodule = run_datamodule(args.checkpoint)
    datamodule.setup()
    test = whole(datamodule.test_dataloader())
    batch = {m: test[m][: args.examples] for m in model.modality_names}
    subsets = inferable_subsets(model, model.modality_names)
    results, seconds = {}, {}
    start = time.perf_counter()
    estimates = estimate_log_likelihoods(
        model, batch, subsets, k=args.k, generator=torch.Generator().manual_seed(0)
    )
    seconds["estimator"] = time.perf_counter() - start
    results["estimator"] = {s: e.log_p for s, e in estimates.items()}
    for name, fn, k in (
        ("reference", reference, args.reference_k),
        ("posterior_only", posterior_only, args.k),
    ):
        if k == 0:  # --reference-k 0: skipped
            continue
        start = time.perf_counter()
        results[name] = fn(model, batch, subsets, k)
        seconds[name] = time.perf_counter() - start
    if args.ais_examples:
        few = {m: t[: args.ais_examples] for m, t in batch.items()}
        generator = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        results["ais"] = {
            s: ais_log_likelihood(
                model, few, s, steps=args.ais_steps, chains=args.ais_chains, generator=generator
            )
            for s in subsets
        }
        seconds["ais"] = time.perf_counter() - start
    report = {"commit": commit(), "date": datetime.date.today().isoformat()}
    report |= {"checkpoint": str(args.checkpoint), "examples": args.examples, "k": args.k}
    report |= {"reference_k": args.reference_k, "seconds": seconds}
    report |= {
        "ais": {"examples": args.ais_examples, "steps": args.ais_steps, "chains": args.ais_chains}
    }
    report["subsets"] = {}
    for s in subsets:
        name = subset_name(s, model.modality_names)
        row = {method: summary(found[s]) for method, found in results.items()}
        line = f"log p({name}): estimator {row['estimator']['mean']:.3f} (+- {row['estimator']['se']:.3f})"
        line += f", posterior only {row['posterior_only']['mean']:.3f}"
        if "reference" in results:
            gap = results["estimator"][s] - results["reference"][s]
            row["estimator_minus_reference"] = summary(gap)
            row["max_abs_gap"] = gap.abs().max().item()
            line += f", reference K={args.reference_k} {row['reference']['mean']:.3f}, gap "
            line += f"{row['estimator_minus_reference']['mean']:+.3f} (max |gap| {row['max_abs_gap']:.3f})"
        if "ais" in results:
            n = args.ais_examples
            row["estimator_minus_ais"] = summary(results["estimator"][s][:n] - results["ais"][s])
            if "reference" in results:
                row["reference_on_ais_examples"] = summary(results["reference"][s][:n])
            line += f", AIS ({n} ex.) {row['ais']['mean']:.3f}, estimator minus AIS "
            line += f"{row['estimator_minus_ais']['mean']:+.3f}"
        report["subsets"][name] = row
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

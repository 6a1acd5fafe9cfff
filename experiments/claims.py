"""The paper's claims, each tested on the comparison's records (`make compare`).

    python experiments/claims.py SOURCE [SOURCE ...]

SOURCEs are sweep folders or folders of run records, as for compare.py. Each
claim the paper makes in words (and figures) that a test metric can check is
a comparison of two means over seeds, `left` against `right`, in one
direction: two models on one metric, or one model on two metrics. A claim
**holds** at a training budget where the difference of the means lies in the
claimed direction by more than twice its standard error (Welch's,
sqrt(s1^2/n1 + s2^2/n2) over the seeds of each side), **fails** where it lies
that far the other way, and is **not separated** otherwise; with a single
seed on a side there is no spread to judge by. One row per claim and budget.
"""

from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from records import budget_text, cell, group, read_records

MARGIN = 2.0  # standard errors a difference must exceed to decide a claim


@dataclass(frozen=True)
class Claim:
    text: str
    where: str  # the paper's figure or section
    left: tuple[str, str]  # (model, metric without `test/`)
    relation: str  # "<" or ">": what the paper says of left against right
    right: tuple[str, str]
    data: str = "mnist"  # the dataset (the `data` choice) whose records decide it


CLAIMS = (
    Claim(
        "Training with W2 aligns the unimodal posteriors; without it they stay apart",
        "Figs. 10, 12",
        ("mw_vae", "w2"),
        "<",
        ("m_vae", "w2"),
    ),
    Claim(
        "From the image alone, MW-VAE gives the right label and M-VAE does not",
        "Figs. 11, 13",
        ("mw_vae", "coherence/image_to_label"),
        ">",
        ("m_vae", "coherence/image_to_label"),
    ),
    Claim(
        "From the label alone, MW-VAE draws the right digit and M-VAE does not",
        "Figs. 11, 13",
        ("mw_vae", "coherence/label_to_image"),
        ">",
        ("m_vae", "coherence/label_to_image"),
    ),
    Claim(
        "mVAE-PoE (joint training) fails when a modality is missing; MW-VAE does not",
        "Fig. 9, Sec. 4.2",
        ("mvae_poe_paper", "coherence/image_to_label"),
        "<",
        ("mw_vae", "coherence/image_to_label"),
    ),
    Claim(
        "MW-VAE is better than mVAE-PoE: from the image alone",
        "Sec. 5",
        ("mw_vae", "coherence/image_to_label"),
        ">",
        ("mvae_poe", "coherence/image_to_label"),
    ),
    Claim(
        "MW-VAE is better than mVAE-PoE: prior samples agree across modalities",
        "Sec. 5",
        ("mw_vae", "coherence/joint"),
        ">",
        ("mvae_poe", "coherence/joint"),
    ),
    Claim(
        "MW-VAE is better than mVAE-PoE: joint log-likelihood",
        "Sec. 5",
        ("mw_vae", "loglik/joint"),
        ">",
        ("mvae_poe", "loglik/joint"),
    ),
    Claim(
        "MW-VAE is better than M-VAE: joint log-likelihood",
        "Sec. 5",
        ("mw_vae", "loglik/joint"),
        ">",
        ("m_vae", "loglik/joint"),
    ),
    Claim(
        "FMW-VAE's private code carries the handwriting the label lacks",
        "Figs. 13, 16",
        ("fmw_vae", "style/mse_own_style/image"),
        "<",
        ("fmw_vae", "recon_mse/label_only/image"),
    ),
    # The paper's Sec. 6.1 proposes, for more than two modalities, aligning each
    # posterior to their W2 barycenter (linear in M): tested on PolyMNIST, M = 5.
    Claim(
        "Aligned to their W2 barycenter, five posteriors agree; without it they stay apart",
        "Sec. 6.1 (proposed)",
        ("mw_vae", "w2"),
        "<",
        ("m_vae", "w2"),
        data="polymnist",
    ),
    Claim(
        "Barycenter alignment carries the digit from one modality to the others",
        "Sec. 6.1 (proposed)",
        ("mw_vae", "coherence/observed_1"),
        ">",
        ("m_vae", "coherence/observed_1"),
        data="polymnist",
    ),
    Claim(
        "The barycenter of more observed modalities carries the digit better",
        "Sec. 6.1 (proposed)",
        ("mw_vae", "coherence/observed_4"),
        ">",
        ("mw_vae", "coherence/observed_1"),
        data="polymnist",
    ),
)


@dataclass(frozen=True)
class Verdict:
    difference: float  # mean(left) - mean(right)
    standard_error: float  # nan with a single seed on a side
    word: str  # holds, fails, not separated, one seed


def verdict(left: list[float], right: list[float], relation: str) -> Verdict:
    """Whether `mean(left) relation mean(right)` holds beyond MARGIN standard errors."""
    difference = statistics.fmean(left) - statistics.fmean(right)
    if min(len(left), len(right)) < 2:
        return Verdict(difference, math.nan, "one seed")
    error = math.sqrt(sum(statistics.variance(v) / len(v) for v in (left, right)))
    signed = difference if relation == ">" else -difference  # > 0: as claimed
    if signed > MARGIN * error:
        word = "holds"
    elif -signed > MARGIN * error:
        word = "fails"
    else:
        word = "not separated"
    return Verdict(difference, error, word)


def values(groups: dict, claim: Claim, side: tuple[str, str], trained) -> list[float]:
    """The test values of `side` over the seeds run on the claim's dataset at `trained`."""
    model, metric = side
    records = [r for r in groups.get((model, trained), []) if r["choices"]["data"] == claim.data]
    return [r["metrics"][f"test/{metric}"] for r in records if f"test/{metric}" in r["metrics"]]


HEADER = (
    "| claim | paper | epochs x batches | left (seeds) | claimed | right (seeds) "
    "| difference (+- s.e.) | verdict |\n|---|---|---|---|---|---|---|---|"
)


def rows(groups: dict) -> list[str]:
    """One table row per claim and budget at which both its sides have records."""
    lines = []
    budgets = sorted({trained for _, trained in groups})
    for claim in CLAIMS:
        for trained in budgets:
            left, right = (values(groups, claim, s, trained) for s in (claim.left, claim.right))
            if not (left and right):
                continue
            found = verdict(left, right, claim.relation)
            spread = "" if math.isnan(found.standard_error) else f" +- {found.standard_error:.3g}"
            sides = [
                f"`{model}` {metric} {cell(v)} ({len(v)})"
                for (model, metric), v in ((claim.left, left), (claim.right, right))
            ]
            lines.append(
                f"| {claim.text} | {claim.where} | {budget_text(trained)} | {sides[0]} | "
                f"{claim.relation} | {sides[1]} | {found.difference:.3g}{spread} | "
                f"**{found.word}** |"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("sources", type=Path, nargs="+")
    args = parser.parse_args(argv)
    groups = group(read_records(args.sources))
    if not groups:
        raise SystemExit(f"no finished run or record in {[str(p) for p in args.sources]}")
    found = rows(groups)
    if not found:
        raise SystemExit(
            f"no claim has records of both its sides in {[str(p) for p in args.sources]}"
        )
    print("\n".join([HEADER, *found]))


if __name__ == "__main__":
    main()

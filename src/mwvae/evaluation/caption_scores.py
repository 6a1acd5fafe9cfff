"""Written captions scored against an image's reference captions: BLEU-4 and CIDEr-D.

`caption_text/<S>_to_<m>/<score>`: for every subset S of modalities that the
model infers from, the captions m that it writes from S (greedy decoding
from the posterior mean, as `caption_attributes`) against every reference
caption of their test image; `caption_text/chance/<score>`: the true first
caption of the next test image against this image's references.

- `bleu4`: corpus BLEU-4 (Papineni et al. 2002: clipped n-gram precisions
  for n = 1..4 pooled over the corpus, brevity penalty by the reference
  length closest to each candidate's, the shorter on a tie, as coco-caption).
- `cider_d`: CIDEr-D (Vedantam et al. 2015), what the COCO caption
  benchmark (coco-caption) reports as "CIDEr": tf-idf weighted n-grams
  (n = 1..4, document frequencies over the test images' reference sets),
  the candidate's counts clipped at each reference's, a Gaussian penalty on
  the length difference (sigma 6), averaged over references and n, times
  10; the mean over images.

Both read lower-cased words with punctuation dropped (`words`), not the
Stanford PTB tokenizer that coco-caption runs through Java: on real COCO
the numbers can differ slightly from coco-caption's (contractions split
differently), never by the definitions.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

from torch import Tensor

from mwvae.data.captioned import CaptionedSplit
from mwvae.evaluation.written_captions import Written

SCORES = ("bleu4", "cider_d")
MAX_N = 4  # n-grams of 1..4 words, for both scores
CIDER_SIGMA = 6.0  # the length penalty's width, in words (coco-caption's)

NGrams = list[Counter]  # per n = 1..MAX_N, the counts of the n-grams of one caption


def words(text: str) -> list[str]:
    """Lower-cased words and numbers of a caption, punctuation dropped."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def ngrams(tokens: Sequence[str]) -> NGrams:
    """The counts of every n-gram of `tokens`, for n = 1..MAX_N."""
    return [
        Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        for n in range(1, MAX_N + 1)
    ]


def bleu4(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 (module docstring) of `candidates[i]` against `references[i]`."""
    matched, total = [0] * MAX_N, [0] * MAX_N
    candidate_length = reference_length = 0
    for candidate, refs in zip(candidates, references, strict=True):
        tokens, ref_tokens = words(candidate), [words(r) for r in refs]
        candidate_length += len(tokens)
        # The closest reference length, the shorter of two as close (coco-caption's rule).
        reference_length += min((abs(len(r) - len(tokens)), len(r)) for r in ref_tokens)[1]
        clip = [Counter() for _ in range(MAX_N)]
        for r in ref_tokens:
            clip = [c | g for c, g in zip(clip, ngrams(r), strict=True)]
        for n, counts in enumerate(ngrams(tokens)):
            matched[n] += sum((counts & clip[n]).values())
            total[n] += sum(counts.values())
    if min(matched) == 0:
        return 0.0
    precision = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / MAX_N
    brevity = min(0.0, 1 - reference_length / candidate_length)
    return math.exp(brevity + precision)


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """CIDEr-D (module docstring) of `candidates[i]` against `references[i]`."""
    if len(candidates) != len(references) or not references:
        raise ValueError("cider_d needs one non-empty list of references per candidate")
    candidate_words = [words(c) for c in candidates]
    reference_words = [[words(r) for r in refs] for refs in references]
    # An n-gram's document is an image: the union of its references' n-grams.
    frequency = Counter(
        gram for refs in reference_words for gram in {g for r in refs for c in ngrams(r) for g in c}
    )
    log_images = math.log(len(references))

    def weighted(tokens: Sequence[str]) -> list[dict[tuple, float]]:
        return [
            {g: count * (log_images - math.log(max(1, frequency[g]))) for g, count in c.items()}
            for c in ngrams(tokens)
        ]

    def similarity(candidate: Sequence[str], reference: Sequence[str]) -> float:
        penalty = math.exp(-((len(candidate) - len(reference)) ** 2) / (2 * CIDER_SIGMA**2))
        total = 0.0
        for c, r in zip(weighted(candidate), weighted(reference), strict=True):
            norms = math.hypot(*c.values()) * math.hypot(*r.values())
            if norms > 0:
                clipped = sum(min(v, r.get(g, 0.0)) * r.get(g, 0.0) for g, v in c.items())
                total += penalty * clipped / norms
        return total / MAX_N

    scores = [
        10 * sum(similarity(c, r) for r in refs) / len(refs)
        for c, refs in zip(candidate_words, reference_words, strict=True)
    ]
    return sum(scores) / len(scores)


def caption_scores(
    candidates: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Every score of `SCORES`."""
    return {"bleu4": bleu4(candidates, references), "cider_d": cider_d(candidates, references)}


def references_by_image(captioned: CaptionedSplit) -> list[list[str]]:
    """Every caption text of each image of the split, in image order."""
    references: list[list[str]] = [[] for _ in range(len(captioned.images))]
    for row, text in zip(captioned.owner.tolist(), captioned.texts, strict=True):
        references[row].append(text)
    return references


def caption_score_metrics(
    written: Written, decode: Callable[[Tensor], list[str]], captioned: CaptionedSplit
) -> dict[str, float]:
    """The module docstring's keys for the captions `written` (`written_captions`)
    on the test split `captioned`, whose ids `decode` turns into text."""
    references = references_by_image(captioned)
    first = [refs[0] for refs in references]
    metrics = {
        f"caption_text/chance/{k}": v
        for k, v in caption_scores(first[1:] + first[:1], references).items()
    }
    for m, by_source in written.items():
        for source, ids in by_source.items():
            scores = caption_scores(decode(ids), references)
            metrics |= {f"caption_text/{source}_to_{m}/{k}": v for k, v in scores.items()}
    return metrics

"""Caption embedding: `CaptionEmbedder.embed` against sentence-transformers'
`encode` (same model, captions and batch size), alternating so that drift on
a shared machine hits both, on synthetic COCO-like sentences (no network);
then two runs through the COCO caption cache, the second reading it.
"""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
import tempfile
from pathlib import Path

import torch

from experiments.bench.common import interleaved, machine, timed
from mwvae.data.caption_cache import cached_caption_embeddings
from mwvae.data.captions import DEFAULT_MODEL, CaptionEmbedder, resolve_model_path
from mwvae.data.coco_source import read_annotations

TARGET = 1.0
TINY = {"n": 64, "batch_size": 16, "repeats": 1}
FULL = {"n": 3000, "batch_size": 256, "repeats": 3}
WORDS = {  # "a|b|c" keeps the lists compact
    "subject": "man|woman|child|dog|cat|group of people|young boy|girl|skier|surfer|bus|train|"
    "horse|giraffe|plate of food|pizza|zebra|motorcycle|teddy bear|laptop|kite|couple",
    "adj": "red|blue|white|black|small|large|old|wooden|yellow|green|brown|shiny|colorful|tall",
    "action": "sitting on|standing next to|riding|walking along|parked near|lying on|"
    "looking at|holding|jumping over|eating|flying above",
    "place": "a busy street|the beach|a grassy field|a kitchen counter|a snowy hill|the side of "
    "the road|a wooden table|a city park|a train station|a living room|the ocean waves",
    "tail": "on a sunny day|at night|in the rain|in front of a building|with trees in the "
    "background|near a crowd of people",
    "det": "A|The",
}
TEMPLATES = [
    "{det} {adj} {subject} {action} a {adj2} {object} in {place}.",
    "{det} {subject} {action} {place} {tail}.",
    "There is a {adj} {subject} {action} a {object} {tail}.",
    "{det} {adj} {subject} and a {object} {action} {place}.",
    "Close up of a {adj} {subject} {action} a {adj2} {object}.",
    "{det} {subject} that is {action} a {object} in {place} {tail}.",
]


def make_captions(n: int, seed: int = 0) -> list[str]:
    """`n` varied sentences of 8-15 words, the same for a given seed."""
    rng, words = random.Random(seed), {k: v.split("|") for k, v in WORDS.items()}
    captions = []
    while len(captions) < n:  # drawn until the length is COCO-like
        caption = rng.choice(TEMPLATES).format(
            object=rng.choice(words["subject"]),
            adj2=rng.choice(words["adj"]),
            **{k: rng.choice(v) for k, v in words.items()},
        )
        if 8 <= len(caption.split()) <= 15:
            captions.append(caption)
    return captions


def compare(n: int, batch_size: int, repeats: int) -> dict:
    """Median and best captions/s of ours and of sentence-transformers, ratios
    ours/ST, and the largest difference of the L2-normalised embeddings."""
    from sentence_transformers import SentenceTransformer  # optional: only the bench needs it

    captions = make_captions(n)
    ours = CaptionEmbedder(model=DEFAULT_MODEL, batch_size=batch_size)
    theirs = SentenceTransformer(resolve_model_path(DEFAULT_MODEL), device="cpu")
    runs = {
        "ours": lambda: ours.embed(captions, progress=False),
        "sentence_transformers": lambda: theirs.encode(
            captions, batch_size=batch_size, convert_to_tensor=True
        ),
    }
    ours.embed(captions[: 2 * batch_size], progress=False)
    theirs.encode(captions[: 2 * batch_size], batch_size=batch_size)
    times, embeddings = interleaved(runs, repeats)
    rate = {name: n / statistics.median(values) for name, values in times.items()}
    # The fastest repeat is the one least disturbed by other work on the machine.
    best = {name: n / min(values) for name, values in times.items()}
    normalised = torch.nn.functional.normalize(embeddings["ours"], dim=1)
    return {
        "n": n,
        "batch_size": batch_size,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "machine": machine(),
        "captions_per_s": rate,
        "seconds": times,
        "ratio_ours_over_st": rate["ours"] / rate["sentence_transformers"],
        # Within a repeat the two ran back to back, so load drift largely cancels.
        "pair_ratios": [
            st / us for us, st in zip(times["ours"], times["sentence_transformers"], strict=True)
        ],
        "best_captions_per_s": best,
        "best_ratio_ours_over_st": best["ours"] / best["sentence_transformers"],
        "max_abs_diff": (normalised - embeddings["sentence_transformers"].cpu()).abs().max().item(),
    }


def cached_runs(n: int, batch_size: int) -> dict:
    """Seconds of a first run through the COCO caption cache (model loaded,
    captions embedded, cache written) and of a second (cache read and
    verified), and how many times the second embedded anything."""
    embedding = dataclasses.asdict(CaptionEmbedder.Options())  # COCO's defaults
    calls = []

    def embed(texts: list[str]) -> torch.Tensor:
        calls.append(len(texts))
        options = embedding | {"batch_size": batch_size}
        return CaptionEmbedder(**options).embed(texts, progress=False)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "captions.json"
        captions = make_captions(n, seed=1)  # five per image, as COCO's
        images = [{"id": i, "file_name": f"{i:012d}.jpg"} for i in range(len(captions) // 5 + 1)]
        notes = [{"image_id": i // 5, "id": i, "caption": c} for i, c in enumerate(captions)]
        path.write_text(json.dumps({"images": images, "annotations": notes}))
        annotations = read_annotations(path)
        cached, calls_before = [], 0
        for _ in range(2):
            calls_before = len(calls)
            run = timed(
                lambda: cached_caption_embeddings(path, annotations, embedding, folder, embed)
            )
            cached.append(run[1])
    return {
        "n": n,
        "first_seconds": cached[0],
        "second_seconds": cached[1],
        "speedup": cached[0] / cached[1],
        "second_run_embed_calls": len(calls) - calls_before,
    }


def run(tiny: bool = False) -> dict:
    """The comparison with sentence-transformers and the cached second run."""
    plan = TINY if tiny else FULL
    return {
        "target": TARGET,
        **compare(**plan),
        "cache": cached_runs(plan["n"], plan["batch_size"]),
    }


def to_markdown(results: dict) -> str:
    rate, best, cache = results["captions_per_s"], results["best_captions_per_s"], results["cache"]
    ratio, target = results["ratio_ours_over_st"], results["target"]
    verdict = f"Target ({target}x) " + (
        "met." if ratio >= target else f"missed by {target - ratio:.3f}."
    )
    lines = [
        "## Caption embedding: ours against sentence-transformers",
        "",
        f"{results['n']} COCO-like captions, all-MiniLM-L6-v2, batch {results['batch_size']}, "
        f"{results['threads']} threads, {results['repeats']} alternating repeats "
        "(`experiments/bench/caption_embedding.py`).",
        "",
        "| | median captions/s | best captions/s |",
        "|---|---:|---:|",
        f"| ours (`CaptionEmbedder.embed`) | {rate['ours']:.0f} | {best['ours']:.0f} |",
        f"| `SentenceTransformer.encode` | {rate['sentence_transformers']:.0f} | "
        f"{best['sentence_transformers']:.0f} |",
        f"| ratio ours / ST | {ratio:.3f} | {results['best_ratio_ours_over_st']:.3f} |",
        "",
        "Ratios within each repeat: "
        + ", ".join(f"{r:.3f}" for r in results["pair_ratios"])
        + f". Largest difference from ST's (normalised) embeddings: {results['max_abs_diff']:.1e}. "
        + verdict,
        "",
        f"Cache: a first run through the COCO caption cache took {cache['first_seconds']:.2f} s "
        f"(language model loaded, {cache['n']} captions embedded, cache written); the second "
        f"{cache['second_seconds']:.3f} s ({cache['speedup']:.0f}x faster; it embedded "
        f"{cache['second_run_embed_calls']} times).",
    ]
    return "\n".join(lines) + "\n"

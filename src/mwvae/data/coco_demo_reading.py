"""Reading a COCO-demo caption back into what it says: the shapes' colours, kinds and positions.

The demo's captions are written from a closed vocabulary (`mwvae.data.coco_demo`):
a shape is always "<size>? <colour> <shape word>", and each position has its
phrases. `read_caption` finds them, so a generated caption can be scored
against the scene of its image (`Attributes`): whether it names the right
colours, the right coloured shapes, the right positions. It reads every
caption the generator writes exactly as its scene (a test checks all of a
demo's captions); words it does not know are skipped, so a generated caption
that garbles a phrase loses that attribute only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mwvae.data.coco_demo import COLOURS, POSITION_PHRASES, SHAPE_WORDS

# Each phrase as words, mapped to what it names; the longest phrases are tried first,
# so "at the top left" is not read as "at the top".
SHAPE_PHRASES = {tuple(w.split()): kind for kind, words in SHAPE_WORDS.items() for w in words}
POSITION_WORDS = {
    tuple(p.split()): position for position, phrases in POSITION_PHRASES.items() for p in phrases
}
ATTRIBUTES = ("colours", "shapes", "positions", "all")


@dataclass(frozen=True)
class Attributes:
    """What a caption or a scene names: its colours, its (colour, shape) pairs and positions."""

    shapes: frozenset[tuple[str, str]]
    positions: frozenset[str]

    @property
    def colours(self) -> frozenset[str]:
        return frozenset(colour for colour, _ in self.shapes)

    def agreement(self, truth: Attributes) -> dict[str, bool]:
        """For each of `ATTRIBUTES`, whether this names exactly what `truth` does."""
        found = {
            "colours": self.colours == truth.colours,
            "shapes": self.shapes == truth.shapes,
            "positions": self.positions == truth.positions,
        }
        return found | {"all": all(found.values())}


def scene_attributes(scene: dict) -> Attributes:
    """The attributes of a scene as the demo's annotation files store it."""
    shapes = scene["shapes"]
    return Attributes(
        frozenset((s["colour"], s["shape"]) for s in shapes),
        frozenset(s["position"] for s in shapes),
    )


def words_of(caption: str) -> list[str]:
    return re.findall(r"[a-z]+", caption.lower())


def match(words: list[str], start: int, phrases: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    """The longest of `phrases` that `words` hold at `start` (empty: none)."""
    for phrase in sorted(phrases, key=len, reverse=True):
        if tuple(words[start : start + len(phrase)]) == phrase:
            return phrase
    return ()


def read_caption(caption: str) -> Attributes:
    """The colours and shapes ("<colour> <shape word>") and positions a caption names."""
    words, shapes, positions = words_of(caption), set(), set()
    i = 0
    while i < len(words):
        if words[i] in COLOURS and (shape := match(words, i + 1, SHAPE_PHRASES)):
            shapes.add((words[i], SHAPE_PHRASES[shape]))
            i += 1 + len(shape)
        elif position := match(words, i, POSITION_WORDS):
            positions.add(POSITION_WORDS[position])
            i += len(position)
        else:
            i += 1
    return Attributes(frozenset(shapes), frozenset(positions))

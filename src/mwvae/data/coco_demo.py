"""A small synthetic dataset in the exact MS-COCO 2017 captions layout.

The real COCO images and captions are large and need a download. This module draws simple
scenes (one or two coloured shapes on a plain background) and writes captions that describe
them, in the same folders and JSON format as COCO 2017, so the image + caption pipeline can be
trained and evaluated offline. The attributes stay visible at 32x32, so image-caption alignment
is learnable and measurable: a caption's colours, shapes, positions and sizes are in its image.
Optionally some training images get no caption annotation, as in incomplete real data
(`num_uncaptioned`); everything else stays as without them.

Usage: `python -m mwvae.data.coco_demo --root data/coco_demo [--train N] [--val N] [--seed S]
[--uncaptioned N]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from rich.progress import track

SPLITS = ("train2017", "val2017")
JPEG_QUALITY = 90
# The demo's defaults: those of `generate_coco_demo`, its command line and data=coco_demo.
NUM_TRAIN = 4000
NUM_VAL = 1000
NUM_UNCAPTIONED = 0
SEED = 0
IMAGE_SIZE = 64
CAPTIONS_PER_IMAGE = 5

# Shape colours: well apart in hue and in RGB, so they survive JPEG and downsampling.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 25, 35),
    "orange": (245, 130, 0),
    "yellow": (250, 230, 40),
    "green": (40, 170, 60),
    "cyan": (0, 200, 210),
    "blue": (40, 70, 220),
    "purple": (150, 40, 190),
}
# None of these is close to a shape colour, so every shape stands out from its background.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
SIZES = ("small", "large")

# Position name -> (column, row) on a 3x3 grid; cell centres sit at 1/4, 1/2 and 3/4 of the side.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "center": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}
# Half the shape's extent, as a fraction of the image side. Two shapes are placed two grid cells
# apart (half the side), and 2 * (0.21 + JITTER) <= 0.5, so they never overlap.
HALF_EXTENT = {"small": 0.13, "large": 0.21}
JITTER = 0.03

# Caption vocabulary: canonical colour words, varied words for everything else.
SHAPE_WORDS = {
    "circle": ("circle", "disc", "round shape"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape"),
    "star": ("star", "star shape"),
    "cross": ("cross", "plus sign", "plus shape"),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
BACKGROUND_WORDS = {"white": ("white",), "black": ("black", "dark"), "gray": ("gray", "grey")}
POSITION_PHRASES = {
    "top left": ("in the top left corner", "at the top left", "in the upper left corner"),
    "top": ("at the top", "near the top", "at the top of the picture"),
    "top right": ("in the top right corner", "at the top right", "in the upper right corner"),
    "left": ("on the left", "at the left", "on the left side", "to the left"),
    "center": ("in the center", "in the middle", "in the centre"),
    "right": ("on the right", "at the right", "on the right side", "to the right"),
    "bottom left": ("in the bottom left corner", "at the bottom left", "in the lower left corner"),
    "bottom": ("at the bottom", "near the bottom", "at the bottom of the picture"),
    "bottom right": (
        "in the bottom right corner",
        "at the bottom right",
        "in the lower right corner",
    ),
}
BACKGROUND_PHRASES = (
    "on a {bg} background",
    "against a {bg} background",
    "over a {bg} backdrop",
    "on a plain {bg} background",
)
JOINS = ("{a} and {b}", "{a}, and {b}", "{a} as well as {b}", "{a}, with {b}")
# {things}: every shape with its position ("a red circle on the left and a ...").
TEMPLATES = (
    "{things}",
    "{things} {background}",
    "there is {things}",
    "there is {things} {background}",
    "an image of {things}",
    "a picture showing {things} {background}",
    "a simple drawing with {things}",
    "we can see {things} {background}",
)
# Single shape only: {shape} and {position} apart, which reads badly with two shapes.
SINGLE_SHAPE_TEMPLATES = (
    "{shape} sits {position} {background}",
    "{shape} is shown {position}",
    "{shape} can be seen {position} {background}",
    "{position} there is {shape}",
)


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    position: str
    size: str
    dx: float  # small offsets from the grid cell centre, as fractions of the side
    dy: float


@dataclass(frozen=True)
class Scene:
    background: str
    shapes: tuple[Shape, ...]


def far_apart(a: str, b: str) -> bool:
    """Two grid cells apart along some axis, so two shapes there cannot overlap."""
    (ax, ay), (bx, by) = POSITIONS[a], POSITIONS[b]
    return max(abs(ax - bx), abs(ay - by)) == 2


POSITION_PAIRS = [(a, b) for a in POSITIONS for b in POSITIONS if far_apart(a, b)]


def sample_scene(rng: random.Random) -> Scene:
    positions = [rng.choice(list(POSITIONS))] if rng.random() < 0.5 else rng.choice(POSITION_PAIRS)
    colours = rng.sample(list(COLOURS), len(positions))  # distinct colours tell shapes apart
    shapes = tuple(
        Shape(
            kind=rng.choice(SHAPES),
            colour=colour,
            position=position,
            size=rng.choice(SIZES),
            dx=rng.uniform(-JITTER, JITTER),
            dy=rng.uniform(-JITTER, JITTER),
        )
        for colour, position in zip(colours, positions, strict=True)
    )
    return Scene(background=rng.choice(list(BACKGROUNDS)), shapes=shapes)


def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def shape_noun_phrase(shape: Shape, rng: random.Random, with_size: bool) -> str:
    words = [rng.choice(SIZE_WORDS[shape.size])] if with_size else []
    words += [shape.colour, rng.choice(SHAPE_WORDS[shape.kind])]
    return with_article(" ".join(words))


def shape_with_position(shape: Shape, rng: random.Random, with_size: bool) -> str:
    position = rng.choice(POSITION_PHRASES[shape.position])
    return f"{shape_noun_phrase(shape, rng, with_size)} {position}"


def write_caption(scene: Scene, rng: random.Random) -> str:
    with_size = rng.random() < 0.6  # sometimes leave the size out, as people do
    background = rng.choice(BACKGROUND_PHRASES).format(
        bg=rng.choice(BACKGROUND_WORDS[scene.background])
    )
    if len(scene.shapes) == 1 and rng.random() < 0.4:
        (shape,) = scene.shapes
        caption = rng.choice(SINGLE_SHAPE_TEMPLATES).format(
            shape=shape_noun_phrase(shape, rng, with_size),
            position=rng.choice(POSITION_PHRASES[shape.position]),
            background=background,
        )
    else:
        described = [
            shape_with_position(shape, rng, with_size)
            for shape in rng.sample(scene.shapes, len(scene.shapes))  # either shape may come first
        ]
        if len(described) == 1:
            things = described[0]
        else:
            things = rng.choice(JOINS).format(a=described[0], b=described[1])
        caption = rng.choice(TEMPLATES).format(things=things, background=background)
    if rng.random() < 0.75:
        return caption[0].upper() + caption[1:] + "."
    return caption


def write_captions(scene: Scene, rng: random.Random, count: int) -> list[str]:
    """`count` captions, distinct where the templates allow it within a few tries."""
    captions: list[str] = []
    for _ in range(count):
        caption = write_caption(scene, rng)
        for _ in range(20):
            if caption not in captions:
                break
            caption = write_caption(scene, rng)
        captions.append(caption)
    return captions


def star_points(cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.5  # a fat star, so it stays a blob at 32x32
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def draw_shape(draw: ImageDraw.ImageDraw, shape: Shape, side: int) -> None:
    column, row = POSITIONS[shape.position]
    cx = side * ((column + 1) / 4 + shape.dx)
    cy = side * ((row + 1) / 4 + shape.dy)
    r = side * HALF_EXTENT[shape.size]
    fill = COLOURS[shape.colour]
    if shape.kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape.kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape.kind == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    elif shape.kind == "star":
        draw.polygon(star_points(cx, cy, r), fill=fill)
    elif shape.kind == "cross":
        w = 0.35 * r
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape.kind!r}")


def render(scene: Scene, side: int) -> Image.Image:
    image = Image.new("RGB", (side, side), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        draw_shape(draw, shape, side)
    return image


def file_name(image_id: int) -> str:
    return f"{image_id:012d}.jpg"


def image_entry(image_id: int, scene: Scene, side: int) -> dict[str, Any]:
    return {
        "license": 1,
        "file_name": file_name(image_id),
        "coco_url": "",  # no real COCO image behind these ids
        "height": side,
        "width": side,
        "date_captured": "2017-01-01 00:00:00",
        "flickr_url": "",
        "id": image_id,
        # Extra key (COCO readers ignore it): the ground truth, for evaluation and tests.
        "scene": {
            "background": scene.background,
            "shapes": [
                {"shape": s.kind, "colour": s.colour, "position": s.position, "size": s.size}
                for s in scene.shapes
            ],
        },
    }


def annotation_file(split: str, seed: int, side: int, images: list, annotations: list) -> dict:
    return {
        "info": {
            "description": f"mwvae synthetic shapes in COCO 2017 captions format ({split})",
            "url": "",
            "version": "1.0",
            "year": 2017,
            "contributor": "mwvae.data.coco_demo",
            "date_created": "2017/09/01",
            "seed": seed,
            "image_size": side,
        },
        "licenses": [{"url": "", "id": 1, "name": "Synthetic data, free to use"}],
        "images": images,
        "annotations": annotations,
    }


def write_split(
    folder: Path,
    split: str,
    image_ids: list[int],
    first_annotation_id: int,
    rng: random.Random,
    seed: int,
    side: int,
    captions_per_image: int,
    uncaptioned: frozenset[int] = frozenset(),
) -> int:
    """Draw and save one split; returns the next free annotation id. The images in
    `uncaptioned` are listed without their captions (drawn all the same, so that the
    random stream, and with it every other image and caption, does not change)."""
    images_dir = folder / split
    images_dir.mkdir()
    images, annotations = [], []
    annotation_id = first_annotation_id
    for image_id in track(image_ids, description=f"Writing {split}"):
        scene = sample_scene(rng)
        # subsampling=0 keeps full colour resolution: small shapes keep their colour.
        render(scene, side).save(
            images_dir / file_name(image_id), format="JPEG", quality=JPEG_QUALITY, subsampling=0
        )
        images.append(image_entry(image_id, scene, side))
        for caption in write_captions(scene, rng, captions_per_image):
            annotations.append({"image_id": image_id, "id": annotation_id, "caption": caption})
            annotation_id += 1
    rng.shuffle(annotations)  # as in real COCO, an image's captions are not contiguous
    annotations = [a for a in annotations if a["image_id"] not in uncaptioned]
    content = annotation_file(split, seed, side, images, annotations)
    with open(folder / "annotations" / f"captions_{split}.json", "w", encoding="utf-8") as f:
        json.dump(content, f, separators=(",", ":"))
    return annotation_id


def check_arguments(
    num_train: int,
    num_val: int,
    image_size: int = IMAGE_SIZE,
    captions_per_image: int = CAPTIONS_PER_IMAGE,
    num_uncaptioned: int = NUM_UNCAPTIONED,
) -> None:
    """Fail on arguments `generate_coco_demo` cannot use; each message starts
    with the argument's name."""
    for name, count in (("num_train", num_train), ("num_val", num_val)):
        if count < 0:
            raise ValueError(f"{name}: must be >= 0, got {count}")
    if not 0 <= num_uncaptioned <= num_train:
        raise ValueError(
            f"num_uncaptioned: must be within [0, num_train={num_train}], got {num_uncaptioned}"
        )
    if image_size < 16:
        raise ValueError(f"image_size: must be >= 16 for the shapes to be drawn, got {image_size}")
    if captions_per_image < 1:
        raise ValueError(f"captions_per_image: must be >= 1, got {captions_per_image}")


def generate_coco_demo(
    root: str | Path,
    num_train: int = NUM_TRAIN,
    num_val: int = NUM_VAL,
    seed: int = SEED,
    image_size: int = IMAGE_SIZE,
    captions_per_image: int = CAPTIONS_PER_IMAGE,
    num_uncaptioned: int = NUM_UNCAPTIONED,
) -> Path:
    """Writes root/train2017/*.jpg, root/val2017/*.jpg, root/annotations/captions_train2017.json,
    root/annotations/captions_val2017.json and returns root. `num_uncaptioned` training images,
    chosen from the seed, have no caption annotation (the rest of the dataset is the same as
    with 0)."""
    check_arguments(num_train, num_val, image_size, captions_per_image, num_uncaptioned)
    root = Path(root)
    if root.exists():
        raise FileExistsError(
            f"{root} already exists; delete it or choose another root (not overwriting it)"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    # Build in a hidden sibling and rename at the end: an interrupted run leaves no `root`.
    staging = root.parent / f".{root.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        (staging / "annotations").mkdir()
        rng = random.Random(seed)
        # Sparse ids like real COCO, unique across both splits.
        ids = rng.sample(range(1, max(1_000_000, 10 * (num_train + num_val))), num_train + num_val)
        split_ids = (sorted(ids[:num_train]), sorted(ids[num_train:]))
        # Chosen by a random stream of their own: `rng` draws the same dataset as without them.
        uncaptioned = frozenset(
            random.Random(f"uncaptioned {seed}").sample(split_ids[0], num_uncaptioned)
        )
        annotation_id = 1
        for split, image_ids in zip(SPLITS, split_ids, strict=True):
            annotation_id = write_split(
                staging,
                split,
                image_ids,
                annotation_id,
                rng,
                seed,
                image_size,
                captions_per_image,
                uncaptioned,
            )
        if root.exists():  # appeared while we were writing
            raise FileExistsError(f"{root} appeared while generating; not overwriting it")
        os.rename(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="output folder (must not exist)")
    parser.add_argument("--train", type=int, default=NUM_TRAIN, help="number of training images")
    parser.add_argument("--val", type=int, default=NUM_VAL, help="number of validation images")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--image-size", type=int, default=IMAGE_SIZE, help="side of the square images"
    )
    parser.add_argument("--captions-per-image", type=int, default=CAPTIONS_PER_IMAGE)
    parser.add_argument(
        "--uncaptioned",
        type=int,
        default=NUM_UNCAPTIONED,
        help="training images without caption annotations",
    )
    args = parser.parse_args(argv)
    root = generate_coco_demo(
        args.root,
        num_train=args.train,
        num_val=args.val,
        seed=args.seed,
        image_size=args.image_size,
        captions_per_image=args.captions_per_image,
        num_uncaptioned=args.uncaptioned,
    )
    print(f"COCO-format demo dataset written to {root}")


if __name__ == "__main__":
    main()

"""Write the built-in toy dataset: discs (domain A) ↔ squares or upright rectangles (domain B), no download needed.

    python datasets/make_toy_dataset.py --save_root ./datasets/toy

Both domains share the same kinds of backgrounds (gradients, stripes, checkers, noise) and the same instance
colours; only the *shape* of the instances differs, which is what InstaGAN translates. A square has the area of
the disc of the same radius, and is axis-aligned unless ``--rotate``: its mask's extent (area / bounding-box
area) is then 1.0 against a disc's π/4 ≈ 0.785, so a shape change can be measured. ``--aspect 1.7`` makes the
squares upright rectangles of the same area, 1.7 times as tall as wide, so the translation changes the masks'
aspect (bounding-box height / width) as well, as sheep ↔ giraffe does in the paper. Each image has 1-4 instances
(``--p_empty`` of them none), some cut by the image border, later ones occluding earlier ones; each mask is the
visible part of its instance. The layout is the real one (README, Datasets): ``{train,test}{A,B}/<id>.png`` and
``{train,test}{A,B}_seg/<id>_<k>.png`` (255 on the instance). Deterministic for a given ``--seed``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from util.progress import Progress  # noqa: E402

PALETTE = [(220, 60, 50), (240, 200, 40), (60, 170, 80), (50, 110, 220), (240, 240, 240), (150, 70, 190)]


BACKGROUNDS = ("gradient", "stripes", "checker", "noise")


def background(
    rng: np.random.Generator, size: int, kinds: tuple[str, ...] = BACKGROUNDS, pixel_noise: float = 6.0
) -> Image.Image:
    """A background of one of ``kinds`` (drawn at random), in random muted colours, plus Gaussian pixel noise of
    standard deviation ``pixel_noise`` (0-255 scale)."""
    c1, c2 = (rng.integers(40, 200, 3) for _ in range(2))
    yy, xx = np.mgrid[0:size, 0:size] / size
    kind = kinds[rng.integers(len(kinds))]
    if kind == "gradient":  # at a random angle
        angle = rng.uniform(0, 2 * math.pi)
        t = ((xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle) + 0.75) / 1.5
    elif kind == "stripes":
        t = (np.sin((xx if rng.integers(2) else yy) * rng.uniform(8, 20)) > 0).astype(float)
    elif kind == "checker":
        n = rng.integers(3, 7)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(float)
    else:  # "noise": smooth noise
        coarse = rng.random((6, 6))
        t = np.array(Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)) / 255.0
    t = np.clip(t, 0, 1)[..., None]
    image = c1 * (1 - t) + c2 * t + rng.normal(0, 1, (size, size, 3)) * pixel_noise
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def shape_polygon(
    domain: str, cx: float, cy: float, r: float, angle: float | None = None, aspect: float = 1.0
) -> list[tuple[float, float]]:
    """A disc (A) of radius ``r``, or a rectangle (B) of the same area and of height / width ``aspect`` (1: a
    square), around (cx, cy), as a polygon.

    The rectangle is upright when ``angle`` is None, else rotated by ``angle`` (radians)."""
    if domain == "A":
        return [(cx + r * math.cos(2 * math.pi * k / 48), cy + r * math.sin(2 * math.pi * k / 48)) for k in range(48)]
    half_w = r * math.sqrt(math.pi / aspect) / 2  # width x height = r·√(π/aspect) x r·√(π·aspect): the disc's area
    half_h = half_w * aspect
    corners = [(-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h)]
    turn = 0.0 if angle is None else angle - math.pi / 4  # a square's corner at ``angle``, as it always had
    c, s = math.cos(turn), math.sin(turn)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in corners]


INSTANCE_COUNT_P = (0.35, 0.35, 0.2, 0.1)  # of 1, 2, 3, 4 instances


def instance_count(rng: np.random.Generator, p_empty: float, max_instances: int = 4) -> int:
    """0 with probability ``p_empty``, else 1 to ``max_instances`` (at most 4; 1 and 2 the most frequent)."""
    if rng.random() < p_empty:
        return 0
    p = np.array(INSTANCE_COUNT_P[:max_instances])
    return int(rng.choice(np.arange(1, max_instances + 1), p=p / p.sum()))


def make_sample(
    rng: np.random.Generator,
    domain: str,
    size: int,
    p_empty: float = 0.02,
    radius: tuple[float, float] = (0.12, 0.22),
    rotate: bool = False,
    aspect: float = 1.0,
    backgrounds: tuple[str, ...] = BACKGROUNDS,
    pixel_noise: float = 6.0,
    max_instances: int = 4,
    outline: bool = True,
) -> tuple[Image.Image, list[np.ndarray]]:
    """One image and the masks of its visible instances (``[size, size]`` bool each, at least 8 pixels).

    ``radius``: the instances' radius range as a fraction of ``size``."""
    image = background(rng, size, backgrounds, pixel_noise)
    draw = ImageDraw.Draw(image)
    masks: list[np.ndarray] = []
    for _ in range(instance_count(rng, p_empty, max_instances)):
        r = rng.uniform(*radius) * size
        # Centres may lie close to the border, so some instances are cut by it.
        cx, cy = rng.uniform(0.08, 0.92, 2) * size
        angle = rng.uniform(0, math.pi / 2)  # drawn in both modes, so --rotate changes only the squares
        polygon = shape_polygon(domain, cx, cy, r, angle if rotate else None, aspect)
        colour = PALETTE[rng.integers(len(PALETTE))]
        draw.polygon(polygon, fill=colour, outline=tuple(int(c * 0.6) for c in colour) if outline else colour)
        layer = Image.new("L", (size, size), 0)
        ImageDraw.Draw(layer).polygon(polygon, fill=255, outline=255)
        new = np.array(layer) > 0
        masks = [m & ~new for m in masks]  # earlier instances are occluded by this one
        masks.append(new)
    return image, [m for m in masks if m.sum() >= 8]


def write_split(root: Path, phase: str, domain: str, n: int, size: int, rng: np.random.Generator, **sample) -> int:
    """Write ``n`` images of one split and their masks; ``sample``: keyword arguments of ``make_sample``.

    Returns the number of instances written."""
    img_dir, seg_dir = root / f"{phase}{domain}", root / f"{phase}{domain}_seg"
    img_dir.mkdir(parents=True, exist_ok=True)
    seg_dir.mkdir(parents=True, exist_ok=True)
    instances = 0
    for i in Progress(range(n), desc=f"{phase}{domain}"):
        image, masks = make_sample(rng, domain, size, **sample)
        image.save(img_dir / f"{i:04d}.png")
        for k, mask in enumerate(masks):
            Image.fromarray(mask.astype(np.uint8) * 255).save(seg_dir / f"{i:04d}_{k}.png")
        instances += len(masks)
    return instances


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--save_root", default="./datasets/toy", help="output folder")
    parser.add_argument("--size", type=int, default=72, help="image side in pixels")
    parser.add_argument("--n_train", type=int, default=48, help="training images per domain")
    parser.add_argument("--n_test", type=int, default=8, help="test images per domain")
    parser.add_argument("--p_empty", type=float, default=0.02, help="share of images with no instance")
    parser.add_argument("--r_min", type=float, default=0.12, help="smallest instance radius, as a fraction of --size")
    parser.add_argument("--r_max", type=float, default=0.22, help="largest instance radius, as a fraction of --size")
    parser.add_argument("--rotate", action="store_true", help="rotate the squares at random (else axis-aligned)")
    parser.add_argument(
        "--aspect",
        type=float,
        default=1.0,
        help="height / width of domain B's shapes: 1 draws squares, above 1 upright rectangles (same area)",
    )
    parser.add_argument(
        "--backgrounds",
        default=",".join(BACKGROUNDS),
        help=f"comma-separated background kinds to draw from, among {','.join(BACKGROUNDS)}",
    )
    parser.add_argument("--pixel_noise", type=float, default=6.0, help="std of the pixel noise, 0-255 scale")
    parser.add_argument("--max_instances", type=int, default=4, help="most instances per image (1-4)")
    parser.add_argument("--no_outline", action="store_true", help="draw the instances without their darker outline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.p_empty <= 1:
        parser.error(f"--p_empty must be in [0, 1], got {args.p_empty}")
    if not 0 < args.r_min <= args.r_max:
        parser.error(f"need 0 < --r_min <= --r_max, got {args.r_min} and {args.r_max}")
    if args.aspect <= 0:
        parser.error(f"--aspect must be > 0, got {args.aspect}")
    kinds = tuple(k for k in args.backgrounds.split(",") if k)
    unknown = sorted(set(kinds) - set(BACKGROUNDS))
    if unknown or not kinds:
        parser.error(f"--backgrounds: unknown or no kind {unknown}; choose among {','.join(BACKGROUNDS)}")
    if not 1 <= args.max_instances <= len(INSTANCE_COUNT_P):
        parser.error(f"--max_instances must be in [1, {len(INSTANCE_COUNT_P)}], got {args.max_instances}")
    if args.pixel_noise < 0:
        parser.error(f"--pixel_noise must be >= 0, got {args.pixel_noise}")
    root = Path(args.save_root)
    rng = np.random.default_rng(args.seed)
    sample = {
        "p_empty": args.p_empty,
        "radius": (args.r_min, args.r_max),
        "rotate": args.rotate,
        "aspect": args.aspect,
        "backgrounds": kinds,
        "pixel_noise": args.pixel_noise,
        "max_instances": args.max_instances,
        "outline": not args.no_outline,
    }
    for phase, n in (("train", args.n_train), ("test", args.n_test)):
        for domain in "AB":
            k = write_split(root, phase, domain, n, args.size, rng, **sample)
            print(f"{root / (phase + domain)}: {n} images, {k} instances")


if __name__ == "__main__":
    main()

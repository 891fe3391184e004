"""Write the built-in toy dataset: discs (domain A) ↔ squares (domain B), no download needed.

    python datasets/make_toy_dataset.py --save_root ./datasets/toy

Both domains share the same kinds of backgrounds (gradients, stripes, checkers, noise) and the same instance
colours; only the *shape* of the instances differs, which is what InstaGAN translates. Each image has 0-4
instances (a few have none), some cut by the image border, later ones occluding earlier ones; each mask is the
visible part of its instance. The layout is the real one (SPEC §4): ``{train,test}{A,B}/<id>.png`` and
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


def background(rng: np.random.Generator, size: int) -> Image.Image:
    """One of four background kinds, in random muted colours."""
    c1, c2 = (rng.integers(40, 200, 3) for _ in range(2))
    yy, xx = np.mgrid[0:size, 0:size] / size
    kind = rng.integers(4)
    if kind == 0:  # gradient at a random angle
        angle = rng.uniform(0, 2 * math.pi)
        t = ((xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle) + 0.75) / 1.5
    elif kind == 1:  # stripes
        t = (np.sin((xx if rng.integers(2) else yy) * rng.uniform(8, 20)) > 0).astype(float)
    elif kind == 2:  # checker
        n = rng.integers(3, 7)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(float)
    else:  # smooth noise
        coarse = rng.random((6, 6))
        t = np.array(Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)) / 255.0
    t = np.clip(t, 0, 1)[..., None]
    image = c1 * (1 - t) + c2 * t + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def shape_polygon(domain: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """A disc (A) or a rotated square (B) of radius ``r`` around (cx, cy), as a polygon."""
    corners = 48 if domain == "A" else 4
    return [
        (cx + r * math.cos(angle + 2 * math.pi * k / corners), cy + r * math.sin(angle + 2 * math.pi * k / corners))
        for k in range(corners)
    ]


def make_sample(rng: np.random.Generator, domain: str, size: int) -> tuple[Image.Image, list[np.ndarray]]:
    image = background(rng, size)
    draw = ImageDraw.Draw(image)
    count = rng.choice(5, p=[0.1, 0.3, 0.3, 0.2, 0.1])
    masks: list[np.ndarray] = []
    for _ in range(count):
        r = rng.uniform(0.1, 0.22) * size
        # Centres may lie close to the border, so some instances are cut by it.
        cx, cy = rng.uniform(0.05, 0.95, 2) * size
        polygon = shape_polygon(domain, cx, cy, r, rng.uniform(0, math.pi / 2))
        colour = PALETTE[rng.integers(len(PALETTE))]
        draw.polygon(polygon, fill=colour, outline=tuple(int(c * 0.6) for c in colour))
        layer = Image.new("L", (size, size), 0)
        ImageDraw.Draw(layer).polygon(polygon, fill=255, outline=255)
        new = np.array(layer) > 0
        masks = [m & ~new for m in masks]  # earlier instances are occluded by this one
        masks.append(new)
    return image, [m for m in masks if m.sum() >= 8]


def write_split(root: Path, phase: str, domain: str, n: int, size: int, rng: np.random.Generator) -> int:
    img_dir, seg_dir = root / f"{phase}{domain}", root / f"{phase}{domain}_seg"
    img_dir.mkdir(parents=True, exist_ok=True)
    seg_dir.mkdir(parents=True, exist_ok=True)
    instances = 0
    for i in Progress(range(n), desc=f"{phase}{domain}"):
        image, masks = make_sample(rng, domain, size)
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
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = Path(args.save_root)
    rng = np.random.default_rng(args.seed)
    for phase, n in (("train", args.n_train), ("test", args.n_test)):
        for domain in "AB":
            k = write_split(root, phase, domain, n, args.size, rng)
            print(f"{root / (phase + domain)}: {n} images, {k} instances")


if __name__ == "__main__":
    main()

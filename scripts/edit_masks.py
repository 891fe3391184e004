"""Mask-controlled translation (paper §3.1): edit an image's instance masks, translate it under each edit.

    python scripts/edit_masks.py --dataroot ./datasets/toy --phase test --domain A --image 0003 \
        --edit shift:0:8:0 --edit scale:0:1.5 --edit flip:0 --edit remove:1 --edit add:0005:0 \
        --out ./results/toy_edits --page --name toy_instagan

Edits (instance k is the image's mask ``<image>_<k>``; pixel offsets at the image's own size):

  shift:k:dx:dy    move instance k by (dx, dy) pixels (right, down); what leaves the image is cut
  scale:k:f        scale instance k by f about the centre of its bounding box (nearest neighbour)
  flip:k           mirror instance k left-right within its bounding box
  remove:k         delete instance k
  add:STEM:j[:dx:dy]  add instance j of image STEM (same folder), optionally moved; it lies on top, so the
                   pixels it covers leave the other instances (masks are the visible part of each instance)

Each edit (and ``original``) is written as a mask folder ``<out>/<edit>/<phase><domain>_seg/``: a copy of the
dataset's folder with this image's masks replaced (k = 0, 1, ... by decreasing area). ``python test.py --dataroot D
--masks <out>/<edit> ...`` translates the dataset with it. ``--page --name RUN`` translates the image under every
edit with the InstaGAN run RUN and writes one page, ``<out>/index.html``: per edit, the masks over the input and the
translation. Further options (``--ngf``, ``--gpu_ids`` ...) go to test.py's parser.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.image_folder import index_masks, make_dataset  # noqa: E402
from data.mask_source import write_masks  # noqa: E402
from models.instances import order_by_area  # noqa: E402

# ------------------------------------------------------------------------------------------------- the edits


def shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``mask`` moved by ``dx`` columns right and ``dy`` rows down; pixels moved out of the image are lost."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    if abs(dx) < w and abs(dy) < h:
        out[yd, xd] = mask[ys, xs]
    return out


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``, inclusive; an empty mask is an error naming the fix."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ValueError("the instance is empty")
    return ys.min(), ys.max(), xs.min(), xs.max()


def flip(mask: np.ndarray) -> np.ndarray:
    """Left-right mirror within the bounding box (the instance stays where it is)."""
    y0, y1, x0, x1 = bbox(mask)
    out = mask.copy()
    out[y0 : y1 + 1, x0 : x1 + 1] = mask[y0 : y1 + 1, x0 : x1 + 1][:, ::-1]
    return out


def scale(mask: np.ndarray, factor: float) -> np.ndarray:
    """Scaled by ``factor`` about the bounding box's centre: output pixel p takes the input at c + (p - c) / f."""
    if factor <= 0:
        raise ValueError(f"scale factor must be positive, got {factor}")
    y0, y1, x0, x1 = bbox(mask)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    h, w = mask.shape
    yy, xx = np.mgrid[:h, :w]
    sy = np.floor(cy + (yy - cy) / factor + 0.5).astype(int)
    sx = np.floor(cx + (xx - cx) / factor + 0.5).astype(int)
    inside = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
    out = np.zeros_like(mask)
    out[inside] = mask[sy[inside], sx[inside]]
    return out


def apply_edit(masks: list[np.ndarray], spec: str, load_other) -> list[np.ndarray]:
    """One edit (see the module docstring) of an image's masks; ``load_other(stem)`` reads another image's."""
    kind, *args = spec.split(":")

    def instance(text: str) -> int:
        k = int(text)
        if not 0 <= k < len(masks):
            raise ValueError(f"--edit {spec}: the image has instances 0..{len(masks) - 1}, not {k}")
        return k

    out = [m.copy() for m in masks]
    try:
        if kind == "shift" and len(args) == 3:
            k = instance(args[0])
            out[k] = shift(out[k], int(args[1]), int(args[2]))
        elif kind == "scale" and len(args) == 2:
            k = instance(args[0])
            out[k] = scale(out[k], float(args[1]))
        elif kind == "flip" and len(args) == 1:
            k = instance(args[0])
            out[k] = flip(out[k])
        elif kind == "remove" and len(args) == 1:
            del out[instance(args[0])]
        elif kind == "add" and len(args) in (2, 4):
            others = load_other(args[0])
            j = int(args[1])
            if not 0 <= j < len(others):
                raise ValueError(f"--edit {spec}: image {args[0]} has instances 0..{len(others) - 1}, not {j}")
            added = others[j] if len(args) == 2 else shift(others[j], int(args[2]), int(args[3]))
            if added.shape != masks[0].shape if masks else False:
                raise ValueError(f"--edit {spec}: image {args[0]} is {added.shape[::-1]}, not {masks[0].shape[::-1]}")
            out = [m & ~added for m in out] + [added]
        else:
            raise ValueError(f"unknown --edit {spec!r}; use shift:k:dx:dy, scale:k:f, flip:k, remove:k or add:STEM:j")
    except ValueError as e:
        raise SystemExit(str(e)) from None
    return order_by_area([m for m in out if m.any()])


def edit_name(spec: str) -> str:
    return spec.replace(":", "_").replace("/", "_")


# ------------------------------------------------------------------------------------------------- main


def read_masks(seg_dir: Path, stem: str) -> list[np.ndarray]:
    by_k = index_masks(seg_dir).get(stem, {})
    return [np.asarray(Image.open(by_k[k]).convert("L")) > 127 for k in sorted(by_k)]


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataroot", required=True, type=Path)
    parser.add_argument("--phase", default="test")
    parser.add_argument("--domain", default="A", choices=("A", "B"))
    parser.add_argument("--image", required=True, help="the image's file stem, e.g. 0003")
    parser.add_argument("--edit", action="append", required=True, help="an edit (repeatable), e.g. shift:0:8:0")
    parser.add_argument("--out", required=True, type=Path, help="where the edited mask folders go")
    parser.add_argument("--overwrite", action="store_true", help="replace existing edit folders in --out")
    parser.add_argument("--page", action="store_true", help="translate under every edit and write <out>/index.html")
    parser.add_argument("--name", default="", help="--page: the InstaGAN run")
    parser.add_argument("--checkpoints_dir", default="./checkpoints")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    args, rest = parse_args(argv)
    image_dir = args.dataroot / f"{args.phase}{args.domain}"
    seg_dir = args.dataroot / f"{args.phase}{args.domain}_seg"
    image_path = (
        next((p for p in make_dataset(image_dir) if p.stem == args.image), None) if image_dir.is_dir() else None
    )
    if image_path is None:
        raise SystemExit(f"no image {args.image}.* in {image_dir}; pass --image <file stem> of one of its images")
    masks = read_masks(seg_dir, args.image)
    if not masks:
        raise SystemExit(f"image {image_path} has no masks in {seg_dir}: predict them first (scripts/predict_masks.py)")
    if args.page and not args.name:
        raise SystemExit("--page needs --name, the InstaGAN run that translates the image")
    variants = {"original": masks}
    for spec in args.edit:
        variants[edit_name(spec)] = apply_edit(masks, spec, lambda stem: read_masks(seg_dir, stem))
    folders = {name: args.out / name for name in variants}
    clash = [f for f in folders.values() if f.exists()]
    if clash and not args.overwrite:
        raise SystemExit(f"{clash[0]} exists ({len(clash)} edit folder(s)); pass --overwrite or another --out")
    existing = index_masks(seg_dir).get(args.image, {})
    for name, edited in variants.items():
        dest = folders[name] / seg_dir.name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(seg_dir, dest)
        write_masks(dest, args.image, edited, {k: dest / p.name for k, p in existing.items()})
        print(f"{name}: {len(edited)} instance(s) -> {dest}")
    if args.page:
        page = write_page(args, rest, image_path, variants)
        print(f"page: {page}")
    print(
        f"translate the dataset under one edit: python test.py --dataroot {args.dataroot} --masks {folders['original']}"
    )
    return folders


def write_page(args, rest: list[str], image_path: Path, variants: dict[str, list[np.ndarray]]) -> Path:
    """One page: per edit, the masks drawn over the input and the translation, at the run's size."""
    from models.translate import load_translation_model, overlay, translate
    from util.html import HTML

    direction = "AtoB" if args.domain == "A" else "BtoA"
    opt, model, _ = load_translation_model(
        args.name, str(args.dataroot), args.checkpoints_dir, ["--direction", direction, *rest]
    )
    size = (opt.fineSizeW, opt.fineSizeH)
    image = Image.open(image_path).convert("RGB")
    resized = image.resize(size, Image.BICUBIC)
    page = HTML(args.out, f"{args.name}: {image_path.name} under mask edits")
    page.add_text("Mask-controlled translation (paper §3.1): the same image translated with each edit of its masks.")
    for name, masks in variants.items():
        small = [np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127 for m in masks]
        small = small[: opt.ins_max]
        output = translate(model, opt, resized, small)
        names = [f"{name}_masks.png", f"{name}_output.png"]
        Image.fromarray(overlay(np.asarray(resized), small)).save(page.get_image_dir() / names[0])
        Image.fromarray(output).save(page.get_image_dir() / names[1])
        page.add_header(name)
        page.add_images(names, [f"{name}: masks", f"{name}: translation"], names, width=256)
    return page.save()


if __name__ == "__main__":
    main()

"""Build an InstaGAN dataset from COCO instance annotations: two categories, one mask per instance.

    python datasets/generate_coco_dataset.py --data_root datasets/COCO --save_root datasets/shp2gir_coco \
        --cat1 sheep --cat2 giraffe

Input (what ``datasets/download_coco.py`` leaves): ``<data_root>/{train,val}2017/*.jpg`` and
``<data_root>/annotations/instances_{train,val}2017.json``.
Output: ``<save_root>/{train,test}{A,B}/<image stem>.png`` and ``..._seg/<image stem>_<k>.png``; COCO's val split
becomes the ``test`` phase (``--val_phase val`` keeps the original's folder name).

As in the original: every image holding an annotation of the category; each mask is resized with the image so
that its shorter side is ``--image_size`` (bilinear, so edges are anti-aliased), then both are center-cropped to
a square; a mask counts as an instance when a pixel is left after the crop (``--min_area`` raises the bar);
images with no instance left are skipped. Crowd annotations (one mask over a group of objects) are kept by
default, as in the original; ``--crowd skip`` drops them. Masks are decoded by pycocotools when installed, else
by a built-in decoder (RLE exactly as pycocotools; polygons with PIL, which differs along the edges).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prep_common import (  # noqa: E402
    RESAMPLE,
    Item,
    OutputSplit,
    Produced,
    Skipped,
    Summary,
    add_common_arguments,
    finish,
    generate_split,
    keep_mask,
    load_rgb,
    mask_image,
    prepare_save_root,
    require,
    resize_and_center_crop,
    shorter_side_resize_hw,
)

SOURCE_SPLITS = ("train", "val")


def create_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", type=Path, default=Path("datasets/COCO"), help="COCO root folder")
    parser.add_argument("--save_root", type=Path, default=Path("datasets/shp2gir_coco"), help="output folder")
    parser.add_argument("--cat1", default="sheep", help="COCO category name of domain A")
    parser.add_argument("--cat2", default="giraffe", help="COCO category name of domain B")
    parser.add_argument("--year", default="2017", help="COCO release: folders <split><year>")
    parser.add_argument("--image_size", type=int, default=256, help="shorter side after resize, and crop size")
    parser.add_argument(
        "--splits", nargs="+", choices=SOURCE_SPLITS, default=list(SOURCE_SPLITS), help="COCO splits to convert"
    )
    parser.add_argument("--val_phase", default="test", help="phase name given to COCO's val split (original: val)")
    parser.add_argument(
        "--crowd", choices=("keep", "skip"), default="keep", help="crowd annotations: keep (original) or skip"
    )
    parser.add_argument(
        "--min_area",
        type=int,
        default=0,
        help="pixels above 127 an instance needs after resize and crop; 0 = any pixel above 0 (original)",
    )
    parser.add_argument(
        "--mask_resample", choices=tuple(RESAMPLE), default="bilinear", help="mask resampling (original: bilinear)"
    )
    parser.add_argument(
        "--mask_backend",
        choices=("auto", "pycocotools", "builtin"),
        default="auto",
        help="segmentation decoder: pycocotools when installed (auto), or the built-in one",
    )
    parser.add_argument("--max_images", type=int, default=0, help="convert at most this many images per split (0: all)")
    add_common_arguments(parser)
    return parser


# ---------------------------------------------------------------------------------------------------------------
# Segmentation decoding (COCO format: polygons, uncompressed RLE with a list of counts, compressed RLE string)


def rle_string_to_counts(counts: str | bytes) -> list[int]:
    """Run lengths of COCO's compressed RLE string (pycocotools' ``rleFrString``).

    Each count is written in 5-bit groups, low bits first, as characters offset by 48; bit 0x20 says another group
    follows, bit 0x10 of the last group is the sign; from the third count on, the value is a difference to the
    count two places before.
    """
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    values: list[int] = []
    pos = 0
    while pos < len(counts):
        x, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise ValueError("truncated RLE string")
            c = ord(counts[pos]) - 48
            x |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                x |= -1 << shift
        if len(values) > 2:
            x += values[-2]
        values.append(x)
    return values


def decode_rle(counts: list[int], height: int, width: int) -> np.ndarray:
    """Boolean ``[H, W]`` mask from run lengths (alternating 0 and 1 runs, starting with 0, column-major)."""
    total = height * width
    if any(c < 0 for c in counts) or sum(counts) != total:
        raise ValueError(f"RLE counts sum to {sum(counts)}, expected {height}x{width} = {total}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T


def decode_polygons(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Boolean ``[H, W]`` union of polygons given as flat ``[x0, y0, x1, y1, ...]`` lists in pixel coordinates.

    Filled with PIL, which agrees with pycocotools' rasterizer except for pixels along the edges.
    """
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        if len(poly) < 6:
            continue  # fewer than three points encloses nothing
        points = [(float(x), float(y)) for x, y in zip(poly[0::2], poly[1::2], strict=False)]
        draw.polygon(points, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def decode_builtin(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Boolean ``[H, W]`` mask of one COCO segmentation without pycocotools."""
    if isinstance(segmentation, list):
        return decode_polygons(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        h, w = segmentation.get("size", (height, width))
        counts = segmentation["counts"]
        counts = rle_string_to_counts(counts) if isinstance(counts, str | bytes) else [int(c) for c in counts]
        return decode_rle(counts, int(h), int(w))
    raise ValueError(f"unknown segmentation format: {type(segmentation).__name__}")


def decode_pycocotools(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Boolean ``[H, W]`` mask of one COCO segmentation, decoded as pycocotools' ``COCO.annToMask`` does."""
    mask_utils = require("pycocotools.mask", "pycocotools", "Decoding COCO segmentations")
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(bool)


def pick_decoder(backend: str):
    """The decoding function for ``--mask_backend``; ``auto`` uses pycocotools when it imports."""
    if backend == "builtin":
        return decode_builtin
    if backend == "pycocotools":
        require("pycocotools.mask", "pycocotools", "--mask_backend pycocotools")
        return decode_pycocotools
    try:
        import pycocotools.mask  # noqa: F401
    except ImportError:
        return decode_builtin
    return decode_pycocotools


# ---------------------------------------------------------------------------------------------------------------


class CocoIndex:
    """The parts of an ``instances_*.json`` file needed here: categories, images, annotations per category."""

    def __init__(self, annotation_file: Path, category_names: list[str]):
        try:
            with open(annotation_file) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise SystemExit(f"annotation file not found: {annotation_file} (run datasets/download_coco.py)") from None
        by_name = {c["name"]: c["id"] for c in data.get("categories", [])}
        unknown = [n for n in category_names if n not in by_name]
        if unknown:
            raise SystemExit(f"unknown COCO categories {unknown}; choices: {', '.join(sorted(by_name))}")
        self.category_ids = {name: by_name[name] for name in category_names}
        wanted = set(self.category_ids.values())
        self.images = {img["id"]: img for img in data.get("images", [])}
        # {category id: {image id: [annotations in file order]}}
        self.anns: dict[int, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
        for ann in data.get("annotations", []):
            if ann.get("category_id") in wanted:
                self.anns[ann["category_id"]][ann["image_id"]].append(ann)

    def image_ids(self, category: str) -> list[int]:
        return sorted(self.anns[self.category_ids[category]])


def make_processor(args: argparse.Namespace, index: CocoIndex, image_dir: Path, category: str):
    """The per-image function: masks first (cheap to reject an image), then the image, both resized and cropped."""
    decode = pick_decoder(args.mask_backend)
    cat_id = index.category_ids[category]
    resample = RESAMPLE[args.mask_resample]
    size = args.image_size

    def process(item: Item) -> Produced | Skipped:
        info = index.images[item.payload]
        height, width = int(info["height"]), int(info["width"])
        resize_hw = shorter_side_resize_hw(width, height, size)
        masks = []
        for ann in index.anns[cat_id][item.payload]:
            if args.crowd == "skip" and ann.get("iscrowd", 0):
                continue
            try:
                mask = decode(ann["segmentation"], height, width)
            except Exception as err:  # re-raised naming the annotation; the item is skipped
                raise ValueError(f"annotation {ann.get('id')}: {type(err).__name__}: {err}") from err
            if mask.shape != (height, width):
                raise ValueError(f"annotation {ann.get('id')} decodes to {mask.shape}, image is {height}x{width}")
            mask = resize_and_center_crop(mask_image(mask), resize_hw, (size, size), resample)
            if keep_mask(mask, args.min_area):
                masks.append(mask)
        if not masks:
            return Skipped("no_instance")
        image = load_rgb(image_dir / info["file_name"])
        if image.size != (width, height):
            raise ValueError(f"image is {image.size[0]}x{image.size[1]}, annotations say {width}x{height}")
        image = resize_and_center_crop(image, resize_hw, (size, size), Image.Resampling.BILINEAR)
        return Produced(image, masks)

    return process


def generate_coco_dataset(args: argparse.Namespace) -> int:
    """Convert the requested COCO splits for ``args.cat1`` (A) and ``args.cat2`` (B); returns the exit status."""
    phases = {split: (args.val_phase if split == "val" else split) for split in args.splits}
    out_splits = [(phases[s], d) for s in args.splits for d in ("A", "B")]
    options = {
        "generator": "coco",
        "cat1": args.cat1,
        "cat2": args.cat2,
        "image_size": args.image_size,
        "crowd": args.crowd,
        "min_area": args.min_area,
        "mask_resample": args.mask_resample,
    }
    prepare_save_root(args.save_root, options, out_splits, args.overwrite)
    summary = Summary(args.save_root, f"COCO {args.cat1} (A) / {args.cat2} (B)")
    for split in args.splits:
        index = CocoIndex(args.data_root / "annotations" / f"instances_{split}{args.year}.json", [args.cat1, args.cat2])
        image_dir = args.data_root / f"{split}{args.year}"
        for domain, category in (("A", args.cat1), ("B", args.cat2)):
            ids = index.image_ids(category)
            if args.max_images > 0:
                ids = ids[: args.max_images]
            items = []
            for i in ids:
                name = index.images.get(i, {}).get("file_name")
                if name is None:  # an annotation of an image the file does not list
                    summary.skip(phases[split], domain, f"image id {i}", "error", "not in the annotation file", True)
                    continue
                items.append(Item(Path(name).stem, str(image_dir / name), i))
            out = OutputSplit(args.save_root, phases[split], domain)
            process = make_processor(args, index, image_dir, category)
            generate_split(items, process, out, summary, phases[split], domain, category, quiet=args.quiet)
    return finish(summary)


def main(argv: list[str] | None = None) -> int:
    args = create_argument_parser().parse_args(argv)
    return generate_coco_dataset(args)


if __name__ == "__main__":
    sys.exit(main())

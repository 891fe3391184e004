"""Build an InstaGAN dataset from LV-MHP-v1 (multi-human parsing): one mask per person wearing the category.

    python datasets/generate_mhp_dataset.py --data_root datasets/LV-MHP-v1 --save_root datasets/pants2skirt_mhp \
        --cat1 pants --cat2 skirt

Input (LV-MHP-v1 as unpacked): ``images/<id>.jpg``, ``annotations/<id>_<n>_<k>.png`` (one label map per person,
pixel value = category index, see ``CATEGORIES``), ``train_list.txt`` and ``test_list.txt`` (one image file name
per line). Output: ``<save_root>/{train,test}{A,B}/<id>.png`` and ``..._seg/<id>_<k>.png``.

As in the original: landscape images (annotation wider than tall) are skipped unless ``--no_skip_horizontal``;
images and masks are resized to height ``--size_h`` keeping the aspect ratio (width rounded up), then
center-cropped to ``--size_w`` x ``--size_h`` (450 x 300 H x W by default; an image narrower than that gets
black side bands, as torchvision's CenterCrop gave); masks are resized bilinearly (anti-aliased edges); a person
counts as an instance when a pixel of the category is left after the crop; images with no instance are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

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
    height_resize_hw,
    keep_mask,
    load_rgb,
    mask_image,
    prepare_save_root,
    resize_and_center_crop,
)

# LV-MHP-v1 label indices.
CATEGORIES = {
    "background": 0,
    "hat": 1,
    "hair": 2,
    "sunglass": 3,
    "upper-clothes": 4,
    "skirt": 5,
    "pants": 6,
    "dress": 7,
    "belt": 8,
    "left-shoe": 9,
    "right-shoe": 10,
    "face": 11,
    "left-leg": 12,
    "right-leg": 13,
    "left-arm": 14,
    "right-arm": 15,
    "bag": 16,
    "scarf": 17,
    "torso-skin": 18,
}

PHASES = ("train", "test")
REASON_LANDSCAPE = "landscape"
REASON_NO_ANNOTATION = "no_annotation"


def create_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", type=Path, default=Path("datasets/LV-MHP-v1"), help="LV-MHP-v1 root")
    parser.add_argument("--save_root", type=Path, default=Path("datasets/pants2skirt_mhp"), help="output folder")
    parser.add_argument("--cat1", default="pants", choices=tuple(CATEGORIES)[1:], help="category of domain A")
    parser.add_argument("--cat2", default="skirt", choices=tuple(CATEGORIES)[1:], help="category of domain B")
    parser.add_argument("--size_h", type=int, default=450, help="output height")
    parser.add_argument("--size_w", type=int, default=300, help="output width")
    parser.add_argument(
        "--no_skip_horizontal", action="store_true", help="keep landscape images (default: skip, as the original)"
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
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES), help="lists to convert")
    add_common_arguments(parser)
    return parser


def read_label_map(path: Path) -> np.ndarray:
    """``[H, W]`` integer labels of one MHP annotation PNG.

    Gray or palette PNGs give their values (palette indices); an RGB file gives its first channel, which is what
    the original's OpenCV reading compared (its three channels are equal in MHP).
    """
    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img)
    except OSError as err:  # the item's source is the photo, so name the annotation at fault
        raise OSError(f"annotation {path.name}: {err}") from err
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise ValueError(f"unexpected annotation shape {arr.shape}")
    return arr


def read_list(path: Path) -> list[str]:
    """Image ids of a ``*_list.txt`` file: each line's file name without its extension."""
    if not path.is_file():
        raise SystemExit(f"{path} not found: --data_root should be the LV-MHP-v1 folder")
    return [line.strip().split(".")[0] for line in path.read_text().splitlines() if line.strip()]


def index_annotations(ann_dir: Path) -> dict[str, list[Path]]:
    """``{image id: [annotation files, sorted]}``, the id being the file name up to its first underscore."""
    index: dict[str, list[Path]] = {}
    for path in sorted(ann_dir.iterdir()):
        if path.is_file() and not path.name.startswith(".") and "_" in path.stem:
            index.setdefault(path.stem.split("_")[0], []).append(path)
    return index


def make_processor(args: argparse.Namespace, img_dir: Path, annotations: dict[str, list[Path]], cat_id: int):
    """The per-image function: one mask per person annotation holding the category, then the photo."""
    resample = RESAMPLE[args.mask_resample]
    crop_hw = (args.size_h, args.size_w)

    def process(item: Item) -> Produced | Skipped:
        ann_paths = annotations.get(item.stem, [])
        if not ann_paths:
            return Skipped(REASON_NO_ANNOTATION)
        masks = []
        landscape = False
        for path in ann_paths:
            labels = read_label_map(path)
            height, width = labels.shape
            if width > height and not args.no_skip_horizontal:
                landscape = True
                continue
            person = labels == cat_id
            if not person.any():
                continue
            resize_hw = height_resize_hw(width, height, args.size_h)
            mask = resize_and_center_crop(mask_image(person), resize_hw, crop_hw, resample)
            if keep_mask(mask, args.min_area):
                masks.append((mask, (width, height)))
        if not masks:
            return Skipped(REASON_LANDSCAPE if landscape else "no_instance")
        image = load_rgb(img_dir / f"{item.stem}.jpg")
        for _, ann_size in masks:
            if ann_size != image.size:
                raise ValueError(f"image is {image.size[0]}x{image.size[1]}, annotation is {ann_size[0]}x{ann_size[1]}")
        resize_hw = height_resize_hw(image.size[0], image.size[1], args.size_h)
        image = resize_and_center_crop(image, resize_hw, crop_hw, Image.Resampling.BILINEAR)
        return Produced(image, [m for m, _ in masks])

    return process


def generate_mhp_dataset(args: argparse.Namespace) -> int:
    """Convert the train and test lists for ``args.cat1`` (A) and ``args.cat2`` (B); returns the exit status."""
    ann_dir = args.data_root / "annotations"
    img_dir = args.data_root / "images"
    if not ann_dir.is_dir():
        raise SystemExit(f"{ann_dir} not found: --data_root should be the LV-MHP-v1 folder")
    lists = {phase: read_list(args.data_root / f"{phase}_list.txt") for phase in args.phases}
    options = {
        "generator": "mhp",
        "cat1": args.cat1,
        "cat2": args.cat2,
        "size_h": args.size_h,
        "size_w": args.size_w,
        "no_skip_horizontal": args.no_skip_horizontal,
        "min_area": args.min_area,
        "mask_resample": args.mask_resample,
    }
    prepare_save_root(args.save_root, options, [(p, d) for p in args.phases for d in ("A", "B")], args.overwrite)
    annotations = index_annotations(ann_dir)
    summary = Summary(args.save_root, f"LV-MHP-v1 {args.cat1} (A) / {args.cat2} (B)")
    for phase, ids in lists.items():
        items = [Item(i, str(img_dir / f"{i}.jpg")) for i in ids]
        for domain, category in (("A", args.cat1), ("B", args.cat2)):
            process = make_processor(args, img_dir, annotations, CATEGORIES[category])
            out = OutputSplit(args.save_root, phase, domain)
            generate_split(items, process, out, summary, phase, domain, category, quiet=args.quiet)
    return finish(summary)


def main(argv: list[str] | None = None) -> int:
    args = create_argument_parser().parse_args(argv)
    return generate_mhp_dataset(args)


if __name__ == "__main__":
    sys.exit(main())

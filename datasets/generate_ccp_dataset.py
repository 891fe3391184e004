"""Build an InstaGAN dataset from Clothing Co-Parsing (CCP): one mask per image, the pixels of a category.

    python datasets/generate_ccp_dataset.py --data_root datasets/clothing-co-parsing \
        --save_root datasets/pants2skirt_ccp --cat1 pants --cat2 skirt

Input (the CCP repository as cloned): ``photos/<id>.jpg``, ``annotations/pixel-level/<id>.mat`` (variable
``groundtruth``: [H, W] label indices), ``label_list.mat`` (variable ``label_list``: the label names, index 0 =
``null``). ``annotations/image-level/*.mat`` (``tags``) has no pixels, so it is not used: the original turned those
images into a validation split without masks, which the loader could not read. Here the pixel-annotated images
are split into train and test (``--test_fraction``, a seeded shuffle of the ids; the lists are saved as
``train_list.txt`` / ``test_list.txt``), so both phases have masks. Images keep their size (as in the original),
saved as PNG; an image is kept when it has a pixel of the category. Needs scipy to read ``.mat`` files.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prep_common import (  # noqa: E402
    Item,
    OutputSplit,
    Produced,
    Skipped,
    Summary,
    add_common_arguments,
    atomic_write_text,
    finish,
    generate_split,
    load_rgb,
    mask_image,
    prepare_save_root,
    require,
)


def create_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", type=Path, default=Path("datasets/clothing-co-parsing"), help="CCP root")
    parser.add_argument("--save_root", type=Path, default=Path("datasets/jeans2skirt_ccp"), help="output folder")
    parser.add_argument("--cat1", default="jeans", help="CCP label name of domain A (see label_list.mat)")
    parser.add_argument("--cat2", default="skirt", help="CCP label name of domain B")
    parser.add_argument(
        "--test_fraction", type=float, default=0.1, help="share of pixel-annotated images held out as test (0: none)"
    )
    parser.add_argument("--split_seed", type=int, default=0, help="seed of the train/test shuffle")
    parser.add_argument("--min_area", type=int, default=1, help="pixels of the category an image needs")
    add_common_arguments(parser)
    return parser


def load_mat(path: Path, key: str) -> np.ndarray:
    """Variable ``key`` of a MATLAB ``.mat`` file (scipy imported here, so other scripts do not need it)."""
    sio = require("scipy.io", "scipy", "Reading CCP .mat files")
    data = sio.loadmat(str(path))
    if key not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise KeyError(f"{path.name} has no variable '{key}' (found: {found})")
    return data[key]


def label_names(label_list: np.ndarray) -> list[str]:
    """The label names of ``label_list.mat``, whose cells load as nested arrays of strings."""
    names = []
    for entry in np.asarray(label_list, dtype=object).ravel():
        while isinstance(entry, np.ndarray):
            entry = entry.ravel()[0] if entry.size else ""
        names.append(str(entry))
    return names


def split_ids(ids: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of the sorted ``ids`` into (train, test), test holding ``round(len * test_fraction)`` ids."""
    if not 0.0 <= test_fraction < 1.0:
        raise SystemExit(f"--test_fraction must be in [0, 1), got {test_fraction}")
    shuffled = sorted(ids)
    random.Random(seed).shuffle(shuffled)
    n_test = round(len(shuffled) * test_fraction)
    return sorted(shuffled[n_test:]), sorted(shuffled[:n_test])


def make_processor(photo_dir: Path, cat_id: int, min_area: int):
    """The per-image function: read the label map, keep the category's pixels as the one mask, read the photo."""

    def process(item: Item) -> Produced | Skipped:
        labels = np.asarray(load_mat(Path(item.payload), "groundtruth"))
        if labels.ndim != 2:
            raise ValueError(f"groundtruth has shape {labels.shape}, expected [H, W]")
        mask = labels == cat_id
        if int(mask.sum()) < max(1, min_area):
            return Skipped("no_instance")
        photo = photo_dir / f"{item.stem}.jpg"
        if not photo.exists():
            raise FileNotFoundError(f"photo {photo} is missing")
        image = load_rgb(photo)
        if image.size != (labels.shape[1], labels.shape[0]):
            raise ValueError(
                f"photo is {image.size[0]}x{image.size[1]}, labels are {labels.shape[1]}x{labels.shape[0]}"
            )
        return Produced(image, [mask_image(mask)])

    return process


def generate_ccp_dataset(args: argparse.Namespace) -> int:
    """Split the pixel-annotated CCP images and convert both categories; returns the exit status."""
    ann_dir = args.data_root / "annotations" / "pixel-level"
    photo_dir = args.data_root / "photos"
    if not ann_dir.is_dir():
        raise SystemExit(f"{ann_dir} not found: --data_root should be the clothing-co-parsing folder")
    names = label_names(load_mat(args.data_root / "label_list.mat", "label_list"))
    unknown = [c for c in (args.cat1, args.cat2) if c not in names]
    if unknown:
        raise SystemExit(f"unknown CCP labels {unknown}; choices: {', '.join(n for n in names if n)}")

    ids = sorted(p.stem for p in ann_dir.glob("*.mat"))
    train_ids, test_ids = split_ids(ids, args.test_fraction, args.split_seed)
    phases = {"train": train_ids, "test": test_ids} if test_ids else {"train": train_ids}
    options = {
        "generator": "ccp",
        "cat1": args.cat1,
        "cat2": args.cat2,
        "test_fraction": args.test_fraction,
        "split_seed": args.split_seed,
        "min_area": args.min_area,
    }
    prepare_save_root(args.save_root, options, [(p, d) for p in phases for d in ("A", "B")], args.overwrite)
    for phase, phase_ids in phases.items():
        atomic_write_text(args.save_root / f"{phase}_list.txt", "".join(f"{i}\n" for i in phase_ids))

    summary = Summary(args.save_root, f"CCP {args.cat1} (A) / {args.cat2} (B)")
    for phase, phase_ids in phases.items():
        items = [Item(i, str(ann_dir / f"{i}.mat"), ann_dir / f"{i}.mat") for i in phase_ids]
        for domain, category in (("A", args.cat1), ("B", args.cat2)):
            process = make_processor(photo_dir, names.index(category), args.min_area)
            out = OutputSplit(args.save_root, phase, domain)
            generate_split(items, process, out, summary, phase, domain, category, quiet=args.quiet)
    summary.notes.append(
        f"{len(ids)} pixel-annotated images: {len(train_ids)} train, {len(test_ids)} test "
        f"(--test_fraction {args.test_fraction}, --split_seed {args.split_seed})"
    )
    return finish(summary)


def main(argv: list[str] | None = None) -> int:
    args = create_argument_parser().parse_args(argv)
    return generate_ccp_dataset(args)


if __name__ == "__main__":
    sys.exit(main())

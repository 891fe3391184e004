"""Masks for images that have none, or from another folder: test.py's ``--masks`` and scripts/predict_masks.py.

``--masks DIR``: the masks are read from ``DIR/{phase}A_seg`` and ``DIR/{phase}B_seg`` instead of the dataroot's
(each domain's folder that exists in ``DIR``; the other domain keeps the dataroot's). scripts/edit_masks.py writes
such folders.

``--masks predict:NAME`` (a ``--model mask_predictor`` run) or ``--masks predict:maskrcnn``: the masks of every
image of ``{phase}A`` and ``{phase}B`` are predicted first (``models/predictors.py``), into
``<results_dir>/<name>/<phase>_<epoch>/predicted_masks/{phase}A_seg`` ..., then read from there. The dataroot's
own mask folders, if any, are neither read nor touched.

Predicted masks are written in the dataset layout: ``<stem>_<k>.png``, 8-bit, 255 on the instance, k = 0, 1, ...
by decreasing area, each file written atomically.
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from util.fileio import atomic_write_bytes
from util.progress import Progress

from .image_folder import index_masks, make_dataset

PREDICT = "predict:"


def add_mask_source_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from models.predictors import add_predictor_options

    parser.add_argument(
        "--masks",
        default="",
        help="where the instance masks come from: '' (the dataroot's _seg folders), a folder DIR holding "
        "{phase}A_seg/{phase}B_seg, or predict:NAME (a --model mask_predictor run) / predict:maskrcnn to predict "
        "them for images that have none (docs/MASKS.md)",
    )
    return add_predictor_options(parser)


def encode_mask(mask: np.ndarray) -> bytes:
    """Bool ``[H, W]`` → PNG bytes of an 8-bit mask, 255 on the instance."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(buffer, format="PNG")
    return buffer.getvalue()


def write_masks(seg_dir: Path, stem: str, masks: list[np.ndarray], existing: dict[int, Path] | None = None) -> None:
    """Write ``<stem>_<k>.png`` for each mask (in the given order), atomically; then remove the image's other
    earlier masks (``existing``: ``{k: path}``) that the new ones did not replace."""
    seg_dir.mkdir(parents=True, exist_ok=True)
    written = set()
    for k, mask in enumerate(masks):
        path = seg_dir / f"{stem}_{k}.png"
        atomic_write_bytes(path, encode_mask(mask))
        written.add(path)
    for path in (existing or {}).values():
        if path not in written:
            path.unlink(missing_ok=True)


def existing_masks(image_dir: Path, seg_dir: Path) -> dict[str, dict[int, Path]]:
    """The images of ``image_dir`` that already have masks in ``seg_dir``: ``{stem: {k: path}}``."""
    index = index_masks(seg_dir)
    stems = {p.stem for p in make_dataset(image_dir)}
    return {stem: by_k for stem, by_k in index.items() if stem in stems}


def refuse_overwrite(folders: list[tuple[Path, Path]]) -> None:
    """Raise ``FileExistsError`` when any image of the ``(image_dir, seg_dir)`` pairs already has masks."""
    found = [(seg, len(e), sum(len(v) for v in e.values())) for img, seg in folders if (e := existing_masks(img, seg))]
    if found:
        where = "; ".join(f"{seg}: {n} image(s), {files} mask file(s)" for seg, n, files in found)
        raise FileExistsError(
            f"masks already exist ({where}); nothing was written. Pass --skip_existing to predict only the images "
            "without masks, --overwrite to replace them, or --out_root to write elsewhere"
        )


def predict_folder(
    predictor,
    image_dir: Path,
    seg_dir: Path,
    domain: str,
    *,
    skip_existing: bool = False,
    max_images: float = float("inf"),
    quiet: bool = False,
) -> dict:
    """Predict the masks of every image of ``image_dir`` (domain ``'A'`` or ``'B'``) into ``seg_dir``.

    Existing masks of an image are replaced (its stale extra ones removed) unless ``skip_existing``; callers check
    with ``refuse_overwrite`` first. An unreadable image is skipped with a warning and counted. Returns counts:
    ``images``, ``instances``, ``without_instances``, ``skipped_existing``, ``unreadable`` (a list of paths).
    """
    images = make_dataset(image_dir, max_images)
    existing = existing_masks(image_dir, seg_dir)
    stats = {
        "folder": str(seg_dir),
        "images": 0,
        "instances": 0,
        "without_instances": 0,
        "skipped_existing": 0,
        "unreadable": [],
    }
    progress = Progress(images, desc=f"{image_dir.name} masks", disable=quiet)
    for path in progress:
        if skip_existing and path.stem in existing:
            stats["skipped_existing"] += 1
            continue
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except Exception as e:  # any decoding failure: skip this image, name it
            warnings.warn(
                f"cannot read image {path} ({type(e).__name__}: {e}): no masks predicted for it", stacklevel=2
            )
            stats["unreadable"].append(str(path))
            continue
        masks = predictor(image, domain)
        write_masks(seg_dir, path.stem, masks, existing.get(path.stem))
        stats["images"] += 1
        stats["instances"] += len(masks)
        stats["without_instances"] += not masks
        progress.set_postfix(f"{stats['instances']} instances")
    return stats


def format_stats(stats: dict) -> str:
    mean = stats["instances"] / stats["images"] if stats["images"] else 0.0
    line = (
        f"{stats['folder']}: {stats['images']} images, {stats['instances']} instances ({mean:.2f} per image), "
        f"{stats['without_instances']} without any"
    )
    if stats["skipped_existing"]:
        line += f", {stats['skipped_existing']} kept their existing masks"
    if stats["unreadable"]:
        line += f", {len(stats['unreadable'])} unreadable (skipped): {', '.join(stats['unreadable'][:3])}"
    return line


def prepare_masks(opt, device, epoch: str) -> None:
    """test.py's ``--masks``: sets ``opt.mask_root`` (read by the dataset) to the folder the masks come from,
    predicting them first for ``predict:...``."""
    if not opt.masks:
        return
    if not opt.masks.startswith(PREDICT):
        root = Path(opt.masks)
        folders = [root / f"{opt.phase}{d}_seg" for d in "AB"]
        if not any(f.is_dir() for f in folders):
            raise FileNotFoundError(
                f"--masks {root}: neither {folders[0]} nor {folders[1]} exists; pass a folder holding "
                "{phase}A_seg / {phase}B_seg, e.g. one written by scripts/edit_masks.py"
            )
        opt.mask_root = str(root)
        return
    from models.predictors import build_predictor

    name = opt.masks[len(PREDICT) :]
    if not name:
        raise ValueError("--masks predict: needs a predictor, e.g. predict:toy_masks or predict:maskrcnn")
    predictor = build_predictor(name, opt, device)
    out = Path(opt.results_dir) / opt.name / f"{opt.phase}_{epoch}" / "predicted_masks"
    dataroot = Path(opt.dataroot)
    for d in "AB":
        image_dir = dataroot / f"{opt.phase}{d}"
        if not image_dir.is_dir():
            continue  # the dataset names the missing folder
        limit = min(opt.max_dataset_size, opt.num_test)  # test.py reads no more
        stats = predict_folder(predictor, image_dir, out / f"{opt.phase}{d}_seg", d, max_images=limit)
        print(f"predicted masks ({name}): {format_stats(stats)}")
    opt.mask_root = str(out)

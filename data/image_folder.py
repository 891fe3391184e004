"""Finding images and their instance masks on disk.

Layout (docs/DESIGN.md §4): ``dataroot/{phase}A`` holds images, ``{phase}A_seg`` their instance masks, one file per
instance, named ``<image stem>_<k>.<ext>`` with k = 0, 1, ...  Masks are matched to images by stem, never by
string replacement on the path (the 2018 code replaced every letter 'A' in the whole path).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

IMG_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)

_MASK_NAME = re.compile(r"^(?P<stem>.+)_(?P<k>\d+)$")


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMG_EXTENSIONS


def make_dataset(directory: str | Path, max_dataset_size: float = float("inf")) -> list[Path]:
    """Sorted image files directly inside ``directory`` (hidden files skipped), at most ``max_dataset_size``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    paths = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_file(p))
    if max_dataset_size != float("inf"):
        paths = paths[: int(max_dataset_size)]
    return paths


def index_masks(seg_dir: str | Path) -> dict[str, dict[int, Path]]:
    """Map each image stem to its masks ``{k: path}`` found in ``seg_dir`` (empty when the folder is missing).

    When two files share a stem and index (``a_0.png`` and ``a_0.jpg``), the first in sorted order wins.
    """
    seg_dir = Path(seg_dir)
    index: dict[str, dict[int, Path]] = defaultdict(dict)
    if not seg_dir.is_dir():
        return {}
    for path in sorted(seg_dir.iterdir()):
        if not path.is_file() or path.name.startswith(".") or not is_image_file(path):
            continue
        match = _MASK_NAME.match(path.stem)
        if match is None:
            continue
        index[match["stem"]].setdefault(int(match["k"]), path)
    return dict(index)


def masks_for(index: dict[str, dict[int, Path]], stem: str, max_instances: int) -> list[Path]:
    """The mask files of one image, ordered by instance index, keeping indices below ``max_instances``."""
    by_k = index.get(stem, {})
    return [by_k[k] for k in sorted(by_k) if k < max_instances]

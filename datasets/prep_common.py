"""Shared helpers of the dataset generators (COCO, CCP, MHP): output folders, resume, skip-and-report, summary.

Every generator turns a list of source items into ``<save_root>/{phase}{domain}/<stem>.png`` images and
``<save_root>/{phase}{domain}_seg/<stem>_<k>.png`` masks (8-bit L, 255 on the instance, 0 elsewhere; docs/DESIGN.md §4).

- One bad source file never aborts a run: the exception is caught, the item is skipped, and the summary names
  the file and the reason.
- Output is idempotent and resumable: an item whose image already exists is not processed again (its masks are
  written first and its image last, each atomically, so an existing image means a finished item). The options
  that shape the output are stored in ``prep_options.json``; a later run with other options refuses to mix them
  unless ``--overwrite`` is given, which clears the output folders first.
- A summary (images and instances per split and domain, skipped items and why) is printed at the end and saved
  as ``prep_summary.json``.

This module is imported by the scripts beside it; it is not a package (``datasets`` would clash with the
HuggingFace package of that name), so the scripts put this folder and the repository root on ``sys.path``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import numpy as np
from PIL import Image

_REPO_ROOT = Path(__file__).resolve().parents[1]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from util.fileio import atomic_open, atomic_write_text  # noqa: E402
from util.progress import Progress  # noqa: E402


def _image_folder() -> ModuleType:
    """``data.image_folder``, without running ``data/__init__.py`` when the package is not loaded yet.

    The package's ``__init__`` imports torch (seconds of start-up) for the training loader; these scripts need
    only the file-matching helpers, so they load that one file by path.
    """
    if "data.image_folder" in sys.modules or "data" in sys.modules:
        return importlib.import_module("data.image_folder")
    spec = importlib.util.spec_from_file_location("_instagan_image_folder", _REPO_ROOT / "data" / "image_folder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


index_masks = _image_folder().index_masks

OPTIONS_FILE = "prep_options.json"
SUMMARY_FILE = "prep_summary.json"

# Skip reasons that are a normal part of filtering, as opposed to a broken source file.
REASON_NO_INSTANCE = "no_instance"
REASON_ERROR = "error"

RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}


class MissingDependency(ImportError):
    """An optional package that one generator needs is not installed; the message says what to pip install."""


def require(module: str, pip_name: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise ``MissingDependency`` telling the user to ``pip install pip_name``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependency(
            f"{purpose} needs the package '{pip_name}', which is not installed: "
            f"run `pip install {pip_name}` (or `pip install -r requirements-datasets.txt`)."
        ) from err


# ---------------------------------------------------------------------------------------------------------------
# Geometry: the original resized with torchvision's Resize then CenterCrop on PIL images; these reproduce it with
# PIL alone (same target sizes, same rounding of the crop offset, zero padding when the image is too small).


def resize_and_center_crop(
    image: Image.Image, resize_hw: tuple[int, int], crop_hw: tuple[int, int], resample: int
) -> Image.Image:
    """Resize ``image`` to ``resize_hw`` (H, W), then take the centered ``crop_hw`` (H, W) window.

    Where the crop is larger than the resized image the outside is filled with zeros, as torchvision's
    ``CenterCrop`` did on PIL images.
    """
    rh, rw = resize_hw
    th, tw = crop_hw
    if image.size != (rw, rh):
        image = image.resize((rw, rh), resample=resample)
    top = round((rh - th) / 2.0)
    left = round((rw - tw) / 2.0)
    return image.crop((left, top, left + tw, top + th))


def shorter_side_resize_hw(width: int, height: int, size: int) -> tuple[int, int]:
    """(H, W) after torchvision's ``Resize(size)``: the shorter side becomes ``size``, the longer is truncated."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def height_resize_hw(width: int, height: int, target_h: int) -> tuple[int, int]:
    """(H, W) of the MHP original: height becomes ``target_h``, width ``ceil(width / height * target_h)``."""
    return target_h, math.ceil(width / height * target_h)


def mask_image(mask: np.ndarray) -> Image.Image:
    """A boolean ``[H, W]`` mask as an 8-bit L image: 255 on the instance, 0 elsewhere."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {mask.shape}")
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")


def mask_area(mask: Image.Image) -> tuple[int, int]:
    """(pixels above 0, pixels above the midpoint 127) of an L mask."""
    arr = np.asarray(mask)
    return int((arr > 0).sum()), int((arr > 127).sum())


def keep_mask(mask: Image.Image, min_area: int) -> bool:
    """Whether a resized mask counts as an instance.

    ``min_area`` 0 is the original's rule (any pixel above 0, anti-aliased edges included); otherwise at least
    ``min_area`` pixels must be above the midpoint.
    """
    any_px, solid_px = mask_area(mask)
    return any_px > 0 if min_area <= 0 else solid_px >= min_area


def load_rgb(path: Path) -> Image.Image:
    """Decode an image file as RGB; falls back to OpenCV (when installed) for files PIL cannot read."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except OSError as pil_error:
        try:
            import cv2  # type: ignore[import-not-found]
        except ImportError:
            raise pil_error from None
        arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if arr is None:
            raise pil_error from None
        return Image.fromarray(arr[:, :, ::-1].copy(), mode="RGB")


# ---------------------------------------------------------------------------------------------------------------
# Items and results


@dataclass
class Item:
    """One source image to process: ``stem`` names its outputs, ``source`` is shown in reports."""

    stem: str
    source: str
    payload: Any = None


@dataclass
class Produced:
    """A processed item: the image and its instance masks (L images of the same size, 255 on the instance)."""

    image: Image.Image
    masks: list[Image.Image]


@dataclass
class Skipped:
    """An item left out, and why. ``error`` marks a broken or unreadable source (as opposed to filtering)."""

    reason: str
    detail: str = ""
    error: bool = False


@dataclass
class SkipRecord:
    phase: str
    domain: str
    source: str
    reason: str
    detail: str
    error: bool


@dataclass
class SplitCounts:
    category: str = ""
    images: int = 0
    instances: int = 0
    resumed: int = 0
    max_instances: int = 0
    histogram: dict[int, int] = field(default_factory=dict)


class Summary:
    """Counts per (phase, domain) and the list of skipped items; ``format()`` is the table printed at the end."""

    def __init__(self, save_root: Path, title: str):
        self.save_root = Path(save_root)
        self.title = title
        self.splits: dict[tuple[str, str], SplitCounts] = {}
        self.skips: list[SkipRecord] = []
        self.notes: list[str] = []

    def split(self, phase: str, domain: str, category: str = "") -> SplitCounts:
        counts = self.splits.setdefault((phase, domain), SplitCounts())
        if category:
            counts.category = category
        return counts

    def add_image(self, phase: str, domain: str, n_instances: int, resumed: bool = False) -> None:
        counts = self.split(phase, domain)
        counts.images += 1
        counts.instances += n_instances
        counts.resumed += int(resumed)
        counts.max_instances = max(counts.max_instances, n_instances)
        counts.histogram[n_instances] = counts.histogram.get(n_instances, 0) + 1

    def skip(self, phase: str, domain: str, source: str, reason: str, detail: str = "", error: bool = False) -> None:
        self.split(phase, domain)
        self.skips.append(SkipRecord(phase, domain, source, reason, detail, error))

    @property
    def errors(self) -> list[SkipRecord]:
        return [s for s in self.skips if s.error]

    def empty_splits(self) -> list[str]:
        return [f"{p}{d}" for (p, d), c in self.splits.items() if c.images == 0]

    def format(self, max_listed: int = 50) -> str:
        """The human-readable summary: one row per split, skip reasons with counts, then every broken file."""
        lines = [f"{self.title}: {self.save_root}"]
        lines.append(f"  {'split':<8} {'category':<16} {'images':>7} {'instances':>10} {'max/img':>8} {'skipped':>8}")
        skipped_per = Counter((s.phase, s.domain) for s in self.skips)
        for (phase, domain), c in self.splits.items():
            name = f"{phase}{domain}"
            resumed = f"  ({c.resumed} already there)" if c.resumed else ""
            lines.append(
                f"  {name:<8} {c.category:<16} {c.images:>7} {c.instances:>10} {c.max_instances:>8} "
                f"{skipped_per[(phase, domain)]:>8}{resumed}"
            )
        if self.skips:
            reasons = Counter(s.reason for s in self.skips)
            lines.append("  skipped: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
        errors = self.errors
        if errors:
            lines.append(f"  {len(errors)} source file(s) could not be used:")
            for s in errors[:max_listed]:
                lines.append(f"    [{s.phase}{s.domain}] {s.source}: {s.detail}")
            if len(errors) > max_listed:
                lines.append(f"    ... and {len(errors) - max_listed} more (see {SUMMARY_FILE})")
        for name in self.empty_splits():
            lines.append(f"  WARNING: {name} has no images; training or testing on it will fail.")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "save_root": str(self.save_root),
            "splits": {f"{p}{d}": asdict(c) for (p, d), c in self.splits.items()},
            "skipped": [asdict(s) for s in self.skips],
            "notes": self.notes,
        }

    def write(self) -> Path:
        path = self.save_root / SUMMARY_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path


# ---------------------------------------------------------------------------------------------------------------
# Output


def save_png_atomic(image: Image.Image, path: Path) -> None:
    """Save ``image`` as PNG at ``path`` atomically (``util.fileio.atomic_open``)."""
    with atomic_open(path) as f:
        image.save(f, format="PNG")


def prepare_save_root(
    save_root: Path, options: dict[str, Any], splits: Sequence[tuple[str, str]], overwrite: bool
) -> None:
    """Create ``save_root``; clear the ``splits`` folders when ``overwrite``; refuse to mix runs with other options.

    ``options`` holds only what shapes the output (categories, sizes, thresholds), stored as ``prep_options.json``.
    Raises ``SystemExit`` with an explanation when an earlier run used different options.
    """
    save_root = Path(save_root)
    save_root.mkdir(parents=True, exist_ok=True)
    stored_path = save_root / OPTIONS_FILE
    options = json.loads(json.dumps(options))  # normalize tuples and paths the way they come back from JSON
    if overwrite:
        for phase, domain in splits:
            for name in (f"{phase}{domain}", f"{phase}{domain}_seg"):
                shutil.rmtree(save_root / name, ignore_errors=True)
        (save_root / SUMMARY_FILE).unlink(missing_ok=True)
    elif stored_path.exists():
        stored = json.loads(stored_path.read_text())
        if stored != options:
            changed = sorted(k for k in set(stored) | set(options) if stored.get(k) != options.get(k))
            diffs = ", ".join(f"{k}: {stored.get(k)!r} -> {options.get(k)!r}" for k in changed)
            raise SystemExit(
                f"{save_root} was generated with other options ({diffs}). Use another --save_root, "
                "or add --overwrite to regenerate it."
            )
    else:
        clashing = [f"{p}{d}" for p, d in splits if any((save_root / f"{p}{d}").glob("*.png"))]
        if clashing:
            raise SystemExit(
                f"{save_root} already holds images ({', '.join(clashing)}) from an unknown run. Use another "
                "--save_root, or add --overwrite to regenerate it."
            )
    atomic_write_text(stored_path, json.dumps(options, indent=2, sort_keys=True) + "\n")


class OutputSplit:
    """The two folders of one split and domain, ``{phase}{domain}`` and ``{phase}{domain}_seg``."""

    def __init__(self, save_root: Path, phase: str, domain: str):
        self.img_dir = Path(save_root) / f"{phase}{domain}"
        self.seg_dir = Path(save_root) / f"{phase}{domain}_seg"
        self.img_dir.mkdir(parents=True, exist_ok=True)
        self.seg_dir.mkdir(parents=True, exist_ok=True)
        self._masks = index_masks(self.seg_dir)

    def done(self, stem: str) -> int | None:
        """Number of masks of a finished item (its image exists), or None when it still has to be processed."""
        if (self.img_dir / f"{stem}.png").is_file():
            return len(self._masks.get(stem, {}))
        return None

    def write(self, stem: str, produced: Produced) -> None:
        """Write the masks (removing stale ones of the same stem), then the image, each atomically."""
        for old in self._masks.get(stem, {}).values():
            old.unlink(missing_ok=True)
        for k, mask in enumerate(produced.masks):
            if mask.size != produced.image.size:
                raise ValueError(f"mask {k} of {stem} is {mask.size}, image is {produced.image.size}")
            save_png_atomic(mask, self.seg_dir / f"{stem}_{k}.png")
        save_png_atomic(produced.image, self.img_dir / f"{stem}.png")


def generate_split(
    items: Sequence[Item],
    process: Callable[[Item], Produced | Skipped],
    out: OutputSplit,
    summary: Summary,
    phase: str,
    domain: str,
    category: str,
    quiet: bool = False,
) -> None:
    """Run ``process`` on every item not already done, write what it produces, and record everything in ``summary``.

    Any exception raised by ``process`` (an unreadable or malformed source file) skips that item only; an error
    while writing the output stops the run.
    """
    summary.split(phase, domain, category)
    for item in Progress(items, desc=f"{phase}{domain} ({category})", disable=quiet):
        n_done = out.done(item.stem)
        if n_done is not None:
            summary.add_image(phase, domain, n_done, resumed=True)
            continue
        try:
            result = process(item)
        except MissingDependency:
            raise
        except Exception as err:  # one bad source file must not abort the run; it is reported by name
            result = Skipped(REASON_ERROR, f"{type(err).__name__}: {err}", error=True)
        if isinstance(result, Produced) and not result.masks:
            result = Skipped(REASON_NO_INSTANCE)
        if isinstance(result, Skipped):
            summary.skip(phase, domain, item.source, result.reason, result.detail, result.error)
        else:
            out.write(item.stem, result)  # a failure here (disk full, permissions) is not the source's: it stops
            summary.add_image(phase, domain, len(result.masks))


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every generator has: ``--overwrite`` and ``--quiet``."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the output folders first and regenerate everything (default: resume, skipping finished items)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def finish(summary: Summary, stream: TextIO | None = None) -> int:
    """Print and save the summary; the exit status is 1 when a split ended with no image, else 0."""
    stream = stream or sys.stdout
    path = summary.write()
    print(summary.format(), file=stream)
    print(
        f"  summary saved to {path}; check the dataset with: python -m data.check --dataroot {summary.save_root}",
        file=stream,
    )
    return 1 if summary.empty_splits() else 0

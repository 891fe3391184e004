"""Check a dataset in the InstaGAN layout before training: ``python -m data.check --dataroot D [--phase train]``.

Layout (docs/DESIGN.md §4): ``D/{phase}A`` and ``B`` hold images; ``D/{phase}A_seg``, ``D/{phase}B_seg`` hold one mask
per instance, named ``<image stem>_<k>.<ext>``. Masks are read as the loader reads them (``convert("L")``): a pixel
above 127 is on the instance. Soft, anti-aliased masks are valid (the original's datasets are full of them).

Problems found, by kind (``KINDS`` below). Errors stop training (``data/unaligned_seg_dataset.py`` raises on
them; per-file ones can be skipped there with ``--skip_bad_samples``), so the exit status is 1:
  missing_folder      --dataroot or an image folder of a checked phase is missing
  no_images           an image folder holds no image
  unreadable          an image or mask file cannot be decoded (zero-byte, truncated, not an image)
  size_mismatch       a mask's width x height differs from its image's
  color_mask          a mask whose color channels disagree (a color picture or a colored label map, not a mask)
  too_many_masks      an image has masks with index >= --max_instances (a warning with --ignore_extra_masks,
                      as the loader then reads only the first ones)
Warnings do not stop training but usually mean a mistake (exit status 0, or 1 with ``--strict``):
  missing_mask_folder an image folder has no ``_seg`` folder (every image is read with zero instances)
  no_masks            an image has no mask (it trains as an image with zero instances)
  orphan_mask         a mask whose stem matches no image (never read)
  bad_mask_name       a file in a mask folder not named <stem>_<k> (never read)
  duplicate           two images with one stem, or two masks with one stem and index (only the first is read)
  index_gap           an image's mask indices are not 0, 1, ..., n-1
  empty_mask          a mask with no pixel above 127 (it behaves as an absent instance)
  not_an_image        a non-image file in an image or mask folder (ignored)
The report ends with per-folder statistics: images, masks, instances per image, image sizes, soft masks.

The per-file checks (``inspect_mask``, ``check_image_file``, ``check_mask_file``, ``check_pair``) are meant to be
reused by the data loader, so that it names the file when it meets one of these problems.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from data.image_folder import _MASK_NAME, IMG_EXTENSIONS, index_masks, is_image_file
from util.progress import Progress

ERROR = "error"
WARNING = "warning"

KINDS: dict[str, str] = {
    "missing_folder": ERROR,
    "no_images": ERROR,
    "unreadable": ERROR,
    "size_mismatch": ERROR,
    "color_mask": ERROR,
    "too_many_masks": ERROR,
    "missing_mask_folder": WARNING,
    "no_masks": WARNING,
    "orphan_mask": WARNING,
    "bad_mask_name": WARNING,
    "duplicate": WARNING,
    "index_gap": WARNING,
    "empty_mask": WARNING,
    "not_an_image": WARNING,
}

KNOWN_PHASES = ("train", "test", "val", "sample")
MIDPOINT = 127
HIGH_BIT_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


@dataclass
class Issue:
    """One problem: ``kind`` is a key of ``KINDS``, ``severity`` its value, ``path`` the file or folder at fault."""

    kind: str
    path: str
    message: str
    severity: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown issue kind {self.kind!r}; choices: {sorted(KINDS)}")
        self.severity = self.severity or KINDS[self.kind]

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class FolderStats:
    """Statistics of one ``{phase}{domain}`` folder pair."""

    images: int = 0
    masks: int = 0
    masks_read: int = 0  # masks with index < max_instances, i.e. the ones the loader reads
    soft_masks: int = 0
    instances: list[int] = field(default_factory=list)  # masks read per image
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)

    def summary(self, max_instances: int) -> dict:
        inst = self.instances or [0]
        return {
            "images": self.images,
            "masks": self.masks,
            "masks_read": self.masks_read,
            "soft_masks": self.soft_masks,
            "instances_min": min(inst),
            "instances_mean": round(statistics.fmean(inst), 2),
            "instances_median": statistics.median(inst),
            "instances_max": max(inst),
            "images_without_masks": sum(1 for n in self.instances if n == 0),
            "histogram": instance_histogram(self.instances, max_instances),
            "size_min": [min(self.widths, default=0), min(self.heights, default=0)],
            "size_max": [max(self.widths, default=0), max(self.heights, default=0)],
        }


@dataclass
class Report:
    """What ``check_dataset`` found: the issues, and statistics per ``{phase}{domain}``."""

    dataroot: str
    phases: list[str]
    max_instances: int
    issues: list[Issue] = field(default_factory=list)
    stats: dict[str, FolderStats] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == WARNING]

    @property
    def ok(self) -> bool:
        """True when training would not fail on this dataset (warnings allowed)."""
        return not self.errors

    def kinds(self) -> Counter:
        return Counter(i.kind for i in self.issues)

    def exit_status(self, strict: bool = False) -> int:
        return 1 if self.errors or (strict and self.warnings) else 0

    def to_dict(self) -> dict:
        return {
            "dataroot": self.dataroot,
            "phases": self.phases,
            "max_instances": self.max_instances,
            "ok": self.ok,
            "counts": dict(self.kinds()),
            "issues": [asdict(i) for i in self.issues],
            "stats": {name: s.summary(self.max_instances) for name, s in self.stats.items()},
        }

    def format(self, max_listed: int = 10) -> str:
        """Human-readable report: statistics per folder, then issues grouped by kind (at most ``max_listed`` each)."""
        lines = [
            f"Dataset {self.dataroot} (phases: {', '.join(self.phases) or '-'}; max_instances {self.max_instances})"
        ]
        for name, s in self.stats.items():
            d = s.summary(self.max_instances)
            lines.append(
                f"  {name}: {d['images']} images, {d['masks']} masks ({d['masks_read']} read); instances per image "
                f"min {d['instances_min']} / mean {d['instances_mean']} / median {d['instances_median']} / "
                f"max {d['instances_max']}; {d['images_without_masks']} without masks"
            )
            if d["images"]:
                hist = " ".join(f"{k}:{v}" for k, v in d["histogram"].items() if v)
                lines.append(f"    instances histogram {hist}")
                (w0, h0), (w1, h1) = d["size_min"], d["size_max"]
                lines.append(
                    f"    image sizes (WxH) {w0}x{h0} .. {w1}x{h1}; soft (anti-aliased, valid) masks: {d['soft_masks']}"
                )
        for severity, issues in ((ERROR, self.errors), (WARNING, self.warnings)):
            if not issues:
                continue
            lines.append(f"{severity.upper()}S ({len(issues)})")
            by_kind: dict[str, list[Issue]] = {}
            for issue in issues:
                by_kind.setdefault(issue.kind, []).append(issue)
            for kind, group in by_kind.items():
                lines.append(f"  {kind} ({len(group)}):")
                lines.extend(f"    {i}" for i in group[:max_listed])
                if len(group) > max_listed:
                    lines.append(f"    ... and {len(group) - max_listed} more")
        if self.errors:
            lines.append(f"FAILED: {len(self.errors)} error(s); training on this dataset would stop.")
        elif self.warnings:
            lines.append(f"OK with {len(self.warnings)} warning(s).")
        else:
            lines.append("OK")
        return "\n".join(lines)


def instance_histogram(counts: Iterable[int], max_instances: int) -> dict[str, int]:
    """Images per number of instances, in buckets ``0 1 2 3 4 5-8 9-<max> ><max>``."""
    buckets = ["0", "1", "2", "3", "4", "5-8", f"9-{max_instances}", f">{max_instances}"]
    hist = dict.fromkeys(buckets, 0)
    for n in counts:
        if n <= 4:
            key = str(n)
        elif n <= 8:
            key = "5-8"
        elif n <= max_instances:
            key = f"9-{max_instances}"
        else:
            key = f">{max_instances}"
        hist[key] = hist.get(key, 0) + 1
    return hist


# ---------------------------------------------------------------------------------------------------------------
# Per-file checks (reusable by the data loader)


def mask_to_gray(mask: Image.Image) -> Image.Image:
    """A decoded mask as the 8-bit ``L`` image the loader reads.

    ``convert("L")`` for 8-bit modes; 16-bit and float masks, which ``convert`` would clip to white, keep values up
    to 255 (an 8-bit mask stored in 16 bits), are scaled from 65535 above that, and from 1.0 when float in [0, 1].
    """
    if mask.mode not in HIGH_BIT_DEPTH:
        return mask.convert("L")
    array = np.asarray(mask).astype(np.float64)
    top = float(array.max()) if array.size else 0.0
    if mask.mode == "F" and top <= 1.0:
        array = array * 255.0
    elif top > 255:
        array = array / 257.0
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "L")


def inspect_mask(mask: Image.Image) -> tuple[list[tuple[str, str]], bool]:
    """Look at a decoded mask. Returns ``([(kind, message), ...], soft)``.

    ``kind`` is ``color_mask`` (color channels disagree) or ``empty_mask`` (no pixel above 127 once read as the
    loader reads it, see ``mask_to_gray``); ``soft`` is True when some pixel is neither 0 nor 255 (anti-aliased
    edges: valid).
    """
    problems: list[tuple[str, str]] = []
    if mask.mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        rgb = np.asarray(mask.convert("RGB"))
        if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
            problems.append(("color_mask", f"{mask.mode} mask whose color channels differ; expected a gray mask"))
    gray = np.asarray(mask_to_gray(mask))
    if gray.size == 0 or int(gray.max()) <= MIDPOINT:
        top = int(gray.max()) if gray.size else 0
        problems.append(("empty_mask", f"no pixel above {MIDPOINT} (max {top}): the instance is empty"))
    soft = bool(((gray != 0) & (gray != 255)).any())
    return problems, soft


def check_image_file(path: Path) -> tuple[tuple[int, int] | None, list[Issue]]:
    """Decode an image. Returns ``((width, height) or None when unreadable, issues)``."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.size, []
    except Exception as err:  # any decoding failure is reported, naming the file
        return None, [Issue("unreadable", str(path), f"cannot read image ({type(err).__name__}: {err})")]


def check_mask_file(path: Path, image_size: tuple[int, int] | None) -> tuple[list[Issue], bool]:
    """Decode a mask and compare it with its image's ``(width, height)`` (skipped when None).

    Returns ``(issues, soft)``; see ``inspect_mask``.
    """
    try:
        with Image.open(path) as img:
            img.load()
            mask = img.copy()
    except Exception as err:  # any decoding failure is reported, naming the file
        return [Issue("unreadable", str(path), f"cannot read mask ({type(err).__name__}: {err})")], False
    issues = []
    if image_size is not None and mask.size != image_size:
        w, h = image_size
        issues.append(
            Issue("size_mismatch", str(path), f"mask is {mask.size[0]}x{mask.size[1]}, its image is {w}x{h} (WxH)")
        )
    problems, soft = inspect_mask(mask)
    issues.extend(Issue(kind, str(path), message) for kind, message in problems)
    return issues, soft


def check_pair(image_path: Path, mask_paths: list[Path]) -> tuple[list[Issue], tuple[int, int] | None, int]:
    """Check one image and the masks the loader would read for it.

    Returns ``(issues, (width, height) of the image or None when unreadable, number of soft masks)``.
    """
    size, issues = check_image_file(image_path)
    soft_count = 0
    for mask_path in mask_paths:
        mask_issues, soft = check_mask_file(mask_path, size)
        issues.extend(mask_issues)
        soft_count += int(soft)
    return issues, size, soft_count


# ---------------------------------------------------------------------------------------------------------------
# Folder and dataset checks


def _list_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def check_folder(
    dataroot: Path,
    phase: str,
    domain: str,
    max_instances: int,
    ignore_extra_masks: bool = False,
    quiet: bool = True,
) -> tuple[list[Issue], FolderStats]:
    """Check ``{phase}{domain}`` and ``{phase}{domain}_seg`` below ``dataroot``. Returns ``(issues, stats)``.

    ``ignore_extra_masks`` mirrors the loader's option: masks with index >= ``max_instances`` are then a warning.
    """
    img_dir = dataroot / f"{phase}{domain}"
    seg_dir = dataroot / f"{phase}{domain}_seg"
    issues: list[Issue] = []
    stats = FolderStats()
    if not img_dir.is_dir():
        return [Issue("missing_folder", str(img_dir), "image folder is missing")], stats
    if not seg_dir.is_dir():
        issues.append(
            Issue("missing_mask_folder", str(seg_dir), "mask folder is missing: every image is read with no instance")
        )

    files = _list_files(img_dir)
    images = [p for p in files if is_image_file(p)]
    issues.extend(
        Issue("not_an_image", str(p), f"ignored: extension not among {', '.join(IMG_EXTENSIONS)}")
        for p in files
        if not is_image_file(p)
    )
    if not images:
        issues.append(Issue("no_images", str(img_dir), "no image files"))
        return issues, stats

    stems = Counter(p.stem for p in images)
    issues.extend(
        Issue("duplicate", str(img_dir / f"{stem}.*"), f"{n} images share the stem '{stem}' and so their masks")
        for stem, n in stems.items()
        if n > 1
    )

    masks = index_masks(seg_dir)
    if seg_dir.is_dir():
        for path in _list_files(seg_dir):
            if not is_image_file(path):
                issues.append(Issue("not_an_image", str(path), "ignored: not an image file"))
                continue
            match = _MASK_NAME.match(path.stem)
            if match is None:
                issues.append(Issue("bad_mask_name", str(path), "ignored: mask names must be <image stem>_<k>"))
            elif masks[match["stem"]][int(match["k"])] != path:
                kept = masks[match["stem"]][int(match["k"])].name
                issues.append(Issue("duplicate", str(path), f"ignored: same stem and index as {kept}"))
        issues.extend(
            Issue("orphan_mask", str(seg_dir / f"{stem}_*"), f"{len(by_k)} mask(s) of '{stem}', which has no image")
            for stem, by_k in sorted(masks.items())
            if stem not in stems
        )

    for image_path in Progress(images, desc=f"{phase}{domain}", disable=quiet):
        by_k = masks.get(image_path.stem, {})
        read = [by_k[k] for k in sorted(by_k) if k < max_instances]
        pair_issues, size, soft = check_pair(image_path, read)
        issues.extend(pair_issues)
        stats.images += 1
        stats.masks += len(by_k)
        stats.masks_read += len(read)
        stats.soft_masks += soft
        stats.instances.append(len(read))
        if not by_k and seg_dir.is_dir():
            issues.append(Issue("no_masks", str(image_path), f"no mask {image_path.stem}_<k>.* in {seg_dir.name}"))
        if by_k and sorted(by_k) != list(range(len(by_k))):
            issues.append(
                Issue("index_gap", str(image_path), f"mask indices {sorted(by_k)} are not 0..{len(by_k) - 1}")
            )
        if any(k >= max_instances for k in by_k):
            extra = sum(1 for k in by_k if k >= max_instances)
            hint = (
                "they are not read (--ignore_extra_masks)"
                if ignore_extra_masks
                else f"the loader stops: pass --max_instances {max(by_k) + 1} or --ignore_extra_masks"
            )
            issues.append(
                Issue(
                    "too_many_masks",
                    str(image_path),
                    f"{extra} mask(s) with index >= --max_instances {max_instances}; {hint}",
                    severity=WARNING if ignore_extra_masks else ERROR,
                )
            )
        if size is not None:
            stats.widths.append(size[0])
            stats.heights.append(size[1])
    return issues, stats


def find_phases(dataroot: Path) -> list[str]:
    """Phases present below ``dataroot``: ``p`` with both ``pA`` and ``pB`` folders, or a known phase with either."""
    names = {p.name for p in dataroot.iterdir() if p.is_dir()} if dataroot.is_dir() else set()
    candidates = {n[:-1] for n in names if n[-1:] in ("A", "B") and len(n) > 1}
    found = [p for p in candidates if (f"{p}A" in names and f"{p}B" in names) or p in KNOWN_PHASES]
    order = {p: i for i, p in enumerate(KNOWN_PHASES)}
    return sorted(found, key=lambda p: (order.get(p, len(order)), p))


def check_dataset(
    dataroot: str | Path,
    phases: Iterable[str] | None = None,
    max_instances: int = 20,
    *,
    ignore_extra_masks: bool = False,
    quiet: bool = True,
) -> Report:
    """Check every folder of ``phases`` (default: all found) below ``dataroot``; see the module docstring.

    ``max_instances`` and ``ignore_extra_masks`` mean what the training options of the same names mean.
    """
    dataroot = Path(dataroot)
    phases = list(phases) if phases else find_phases(dataroot)
    report = Report(str(dataroot), phases, max_instances)
    if not dataroot.is_dir():
        report.issues.append(Issue("missing_folder", str(dataroot), "--dataroot does not exist"))
        return report
    if not phases:
        report.issues.append(
            Issue("missing_folder", str(dataroot / "trainA"), "no {phase}A / {phase}B image folders found")
        )
        return report
    for phase in phases:
        for domain in ("A", "B"):
            issues, stats = check_folder(dataroot, phase, domain, max_instances, ignore_extra_masks, quiet=quiet)
            report.issues.extend(issues)
            report.stats[f"{phase}{domain}"] = stats
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataroot", required=True, type=Path, help="dataset root (holds trainA, trainA_seg, ...)")
    parser.add_argument(
        "--phase", action="append", help="phase to check (repeatable); default: every phase found (train, test, ...)"
    )
    parser.add_argument("--max_instances", type=int, default=20, help="masks read per image, as in training")
    parser.add_argument(
        "--ignore_extra_masks",
        action="store_true",
        help="as the training option: masks with index >= --max_instances are a warning, not an error",
    )
    parser.add_argument("--strict", action="store_true", help="exit with status 1 on warnings too")
    parser.add_argument("--max_listed", type=int, default=10, help="issues listed per kind")
    parser.add_argument("--json", type=Path, help="also write the full report as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    report = check_dataset(
        args.dataroot, args.phase, args.max_instances, ignore_extra_masks=args.ignore_extra_masks, quiet=args.quiet
    )
    print(report.format(args.max_listed))
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report.exit_status(args.strict)


if __name__ == "__main__":
    sys.exit(main())

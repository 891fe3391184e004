"""Download and unpack COCO 2017 (train and val images, instance annotations) for generate_coco_dataset.py.

    python datasets/download_coco.py                       # into datasets/COCO: annotations, train2017, val2017
    python datasets/download_coco.py --items annotations val   # only what a quick try needs (about 1 GB)

Resumable: an interrupted download continues where it stopped (HTTP range requests) when run again, and an item
already unpacked is skipped. Each archive is checked against its MD5 checksum (the ones published with common
COCO tooling, listed below) before it is unpacked; a mismatch deletes the file and stops with an error. Sizes:
train2017.zip 18 GB, val2017.zip 0.8 GB, annotations_trainval2017.zip 0.25 GB. Uses only the standard library.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from util.progress import Progress  # noqa: E402

BASE_URL = "http://images.cocodataset.org"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    path: str  # below the base URL
    md5: str | None
    contents: str  # folder the archive unpacks to, below the root


ARCHIVES = {
    "annotations": Archive(
        "annotations/annotations_trainval2017.zip", "f4bbac642086de4f52a3fdda2de5fa2c", "annotations"
    ),
    "train": Archive("zips/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2", "train2017"),
    "val": Archive("zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80", "val2017"),
    "test": Archive("zips/test2017.zip", "77ad2c53ac5d0aea611d422c0938fb35", "test2017"),
}
DEFAULT_ITEMS = ("annotations", "train", "val")


def create_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("datasets/COCO"), help="where to download and unpack")
    parser.add_argument(
        "--items", nargs="+", choices=tuple(ARCHIVES), default=list(DEFAULT_ITEMS), help="archives to fetch"
    )
    parser.add_argument("--base_url", default=BASE_URL, help="server (or mirror) holding zips/ and annotations/")
    parser.add_argument("--keep_zip", action="store_true", help="keep each archive after unpacking it")
    parser.add_argument("--no_verify", action="store_true", help="skip the MD5 check")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, quiet: bool = False) -> None:
    """Fetch ``url`` to ``dest``, resuming from ``dest.part`` when an earlier run was interrupted.

    The partial file is renamed to ``dest`` only once the server has sent everything.
    """
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # nothing left to send: the partial file is complete
            part.rename(dest)
            return
        raise
    with response:
        resumed = response.status == 206
        if start and not resumed:
            start = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        progress = Progress(total=total, desc=dest.name, disable=quiet)
        progress.update(start)
        with open(part, "ab" if resumed else "wb") as f:
            while block := response.read(CHUNK):
                f.write(block)
                progress.update(len(block))
        progress.close()
    if total is not None and part.stat().st_size != total:
        raise OSError(f"{url}: got {part.stat().st_size} of {total} bytes; run again to resume")
    part.rename(dest)


def fetch(name: str, root: Path, base_url: str, keep_zip: bool, verify: bool, quiet: bool) -> None:
    """Download, check and unpack one archive of ``ARCHIVES`` into ``root`` (skipped when already unpacked)."""
    archive = ARCHIVES[name]
    done_marker = root / f".{name}.done"
    if done_marker.exists():
        print(f"{name}: already in {root / archive.contents}")
        return
    dest = root / Path(archive.path).name
    if not dest.exists():
        download(f"{base_url.rstrip('/')}/{archive.path}", dest, quiet)
    if verify and archive.md5:
        found = md5sum(dest)
        if found != archive.md5:
            dest.unlink()
            raise SystemExit(f"{dest.name}: MD5 {found} != {archive.md5}; the file was deleted, run again")
    with zipfile.ZipFile(dest) as zf:
        zf.extractall(root)
    done_marker.touch()
    if not keep_zip:
        dest.unlink()
    print(f"{name}: unpacked to {root / archive.contents}")


def main(argv: list[str] | None = None) -> int:
    args = create_argument_parser().parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    for name in args.items:
        fetch(name, args.root, args.base_url, args.keep_zip, not args.no_verify, args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())

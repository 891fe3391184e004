"""Install Visdom's web assets (JavaScript, CSS, fonts) from the npm registry, so that its server starts offline.

``python -m visdom.server`` downloads these files from CDNs (unpkg.com, cdn.plot.ly, d3js.org, cdnjs) at every start
and exits when it cannot. The same files are published as npm packages; this script takes them from there, puts them
where Visdom looks (``<visdom package>/static/``) and marks the install as built, so the server no longer fetches
anything.

    python scripts/install_visdom_assets.py                      # needs the npm registry (npm, or plain HTTPS)
    python scripts/install_visdom_assets.py --download_only DIR  # on a machine with registry access: keep tarballs
    python scripts/install_visdom_assets.py --tarballs DIR       # then on the offline machine: install from DIR
    python scripts/install_visdom_assets.py --check              # exit status 0 when everything is in place

Running it again does nothing when every file is already there (``--force`` reinstalls). The registry is
``$npm_config_registry`` or https://registry.npmjs.org/. Written for visdom 0.2.4 (see requirements-visdom.txt).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from util.progress import Progress  # noqa: E402

# (npm package, version, {destination under static/: file in the package}). Destinations are the names Visdom's
# own downloader (visdom/server/build.py, download_scripts) gives them; the versions are the ones it pins.
_BOOTSTRAP_FONTS = {
    f"fonts/glyphicons-halflings-regular.{ext}": f"dist/fonts/glyphicons-halflings-regular.{ext}"
    for ext in ("eot", "woff2", "woff", "ttf", "svg")
}
_MATHJAX = (
    "config/Safe.js",
    "config/TeX-AMS-MML_HTMLorMML.js",
    "extensions/Safe.js",
    "MathJax.js",
    "jax/output/SVG/fonts/TeX/fontdata.js",
    "jax/output/SVG/jax.js",
    "jax/output/SVG/fonts/TeX/Size1/Regular/Main.js",
    "jax/output/SVG/config.js",
)
ASSETS: list[tuple[str, str, dict[str, str]]] = [
    ("jquery", "3.1.1", {"js/jquery.min.js": "dist/jquery.min.js"}),
    (
        "bootstrap",
        "3.3.7",
        {
            "js/bootstrap.min.js": "dist/js/bootstrap.min.js",
            "css/bootstrap.min.css": "dist/css/bootstrap.min.css",
            **_BOOTSTRAP_FONTS,
            # build.py saves this one under a name with the URL's fragment in it, and checks for that name
            "fonts/glyphicons-halflings-regular.svg#glyphicons_halflingsregular": (
                "dist/fonts/glyphicons-halflings-regular.svg"
            ),
        },
    ),
    ("react", "16.2.0", {"js/react-react.min.js": "umd/react.production.min.js"}),
    ("react-dom", "16.2.0", {"js/react-dom.min.js": "umd/react-dom.production.min.js"}),
    ("react-modal", "3.1.10", {"js/react-modal.min.js": "dist/react-modal.min.js"}),
    # cdn.plot.ly/plotly-2.11.1.min.js is the same build as this package's plotly.min.js
    ("plotly.js-dist-min", "2.11.1", {"js/plotly-plotly.min.js": "plotly.min.js"}),
    ("sjcl", "1.0.7", {"js/sjcl.js": "sjcl.js"}),
    (
        "layout-bin-packer",
        "1.4.0",
        {
            "js/layout_bin_packer.js": "dist/layout-bin-packer.js",
            "js/layout-bin-packer.js.map": "dist/layout-bin-packer.js.map",
        },
    ),
    # d3js.org/d3.v3.min.js is d3 3.5.17, the last 3.x; d3-selection-multi.v1.js is 1.0.1, the last 1.x
    ("d3", "3.5.17", {"js/d3.v3.min.js": "d3.min.js"}),
    ("d3-selection-multi", "1.0.1", {"js/d3-selection-multi.v1.js": "build/d3-selection-multi.js"}),
    ("save-svg-as-png", "1.4.17", {"js/saveSvgAsPng.js": "lib/saveSvgAsPng.js"}),
    ("react-resizable", "1.4.6", {"css/react-resizable-styles.css": "css/styles.css"}),
    ("react-grid-layout", "0.16.3", {"css/react-grid-layout-styles.css": "css/styles.css"}),
    ("classnames", "2.2.5", {"fonts/classnames": "index.js"}),
    ("mathjax", "2.7.5", {f"js/mathjax/2.7.5/{p}": p for p in _MATHJAX}),
]


def visdom_dir() -> Path:
    """The installed visdom package's folder, found without importing it."""
    spec = importlib.util.find_spec("visdom")
    if spec is None or spec.origin is None:
        raise SystemExit(
            "visdom is not installed in this Python: pip install -r requirements-visdom.txt "
            "(scripts/setup_env.sh does it)"
        )
    return Path(spec.origin).parent


def visdom_version(package: Path) -> str:
    version_file = package / "VERSION"
    return version_file.read_text().strip() if version_file.is_file() else "no_version_file"


def missing_files(static: Path) -> list[str]:
    return [dest for _, _, files in ASSETS for dest in files if not (static / dest).is_file()]


def tarball_name(name: str, version: str) -> str:
    return f"{name.replace('/', '-').lstrip('@')}-{version}.tgz"


def registry() -> str:
    return (os.environ.get("npm_config_registry") or "https://registry.npmjs.org/").rstrip("/") + "/"


def fetch_with_npm(dest: Path) -> None:
    """``npm pack`` every package in one call: npm's own client, cache and integrity checks. Failures are left to
    the HTTPS fallback, package by package."""
    if not shutil.which("npm"):
        return
    specs = [f"{name}@{version}" for name, version, _ in ASSETS]
    try:
        subprocess.run(
            ["npm", "pack", *specs, "--pack-destination", str(dest), "--silent"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as e:
        print(f"npm pack failed ({e}); using the registry over HTTPS", file=sys.stderr)


def fetch_with_https(name: str, version: str, dest: Path) -> Path:
    """The registry's tarball over HTTPS, checked against the integrity hash the registry publishes."""
    with urllib.request.urlopen(f"{registry()}{name}/{version}", timeout=60) as r:
        dist = json.load(r)["dist"]
    with urllib.request.urlopen(dist["tarball"], timeout=300) as r:
        data = r.read()
    if "integrity" in dist and dist["integrity"].startswith("sha512-"):
        ok = base64.b64encode(hashlib.sha512(data).digest()).decode() == dist["integrity"][len("sha512-") :]
    else:
        ok = hashlib.sha1(data).hexdigest() == dist["shasum"]
    if not ok:
        raise SystemExit(f"{name}@{version}: the downloaded tarball does not match the registry's checksum")
    path = dest / tarball_name(name, version)
    path.write_bytes(data)
    return path


def get_tarball(name: str, version: str, tarballs: Path | None, work: Path) -> Path:
    if tarballs is not None:
        path = tarballs / tarball_name(name, version)
        if not path.is_file():
            raise SystemExit(f"{path} is missing: fill the folder with --download_only where the registry is reachable")
        return path
    path = work / tarball_name(name, version)  # fetched by fetch_with_npm, or now
    return path if path.is_file() else fetch_with_https(name, version, work)


def extract(tarball: Path, files: dict[str, str], static: Path) -> None:
    """Copy ``files`` (destination: path inside the package) out of an npm tarball (members start with ``package/``)."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if m.isfile() and "/" in m.name}
        for dest, source in files.items():
            if source not in members:
                raise SystemExit(f"{tarball.name} has no {source}")
            data = tar.extractfile(members[source]).read()
            target = static / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visdom_dir", type=Path, default=None, help="the visdom package folder (default: installed)")
    parser.add_argument("--tarballs", type=Path, default=None, help="install from npm tarballs in this folder")
    parser.add_argument("--download_only", type=Path, default=None, help="only save the npm tarballs in this folder")
    parser.add_argument("--force", action="store_true", help="reinstall even when every file is in place")
    parser.add_argument("--check", action="store_true", help="only report whether every file is in place")
    args = parser.parse_args(argv)

    if args.download_only is not None:
        args.download_only.mkdir(parents=True, exist_ok=True)
        fetch_with_npm(args.download_only)
        for name, version, _ in Progress(ASSETS, desc="npm tarballs"):
            get_tarball(name, version, None, args.download_only)
        print(
            f"saved {len(ASSETS)} npm tarballs in {args.download_only}; on the offline machine run "
            f"python scripts/install_visdom_assets.py --tarballs {args.download_only}"
        )
        return 0

    package = args.visdom_dir or visdom_dir()
    static = package / "static"
    built = static / "version.built"
    version = visdom_version(package)
    missing = missing_files(static)
    done = not missing and built.is_file() and built.read_text().strip() == version
    if args.check:
        print(
            f"Visdom assets in {static}: "
            + (
                "complete"
                if done
                else f"missing {len(missing)} file(s), or not "
                "marked as built; run python scripts/install_visdom_assets.py"
            )
        )
        return 0 if done else 1
    if done and not args.force:
        print(f"Visdom assets already installed in {static}")
        return 0
    with tempfile.TemporaryDirectory(prefix="visdom_assets_") as work:
        if args.tarballs is None:
            fetch_with_npm(Path(work))
        for name, version_, files in Progress(ASSETS, desc="visdom assets"):
            extract(get_tarball(name, version_, args.tarballs, Path(work)), files, static)
    # Visdom's downloader skips the network only when this file holds the package's version (and every file exists).
    built.write_text(version)
    print(
        f"installed {sum(len(f) for _, _, f in ASSETS)} Visdom asset files from {len(ASSETS)} npm packages into "
        f"{static}; start the server with: python -m visdom.server"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

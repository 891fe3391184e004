"""Web pages built with dominate: a title, headers, text, rows of captioned images, and raw markup (an SVG plot).

Used for the training page (``checkpoints/<name>/web/index.html``) and test.py's results page. The pages fit the
window: each row of images is a CSS grid whose images shrink with the page (never beyond their own width), charts
scale likewise, and each entry's header stays at the top of the window while its images are on screen. Long pages
(hundreds of inputs) load the images of their first entries at once and the others as they scroll into view.
"""

from __future__ import annotations

from pathlib import Path

import dominate
from dominate.tags import a, details, div, figcaption, figure, h1, h3, img, meta, p, pre, style, summary
from dominate.util import raw
from PIL import Image

from .util import atomic_write_text

EAGER_ENTRIES = 8  # rows of images that load at once; later ones load as they come near the window (loading=lazy)

CSS = """
body { font-family: sans-serif; margin: 0 12px 24px; }
h3.entry { position: sticky; top: 0; z-index: 1; margin: 14px 0 4px; padding: 4px 0; background: #fff;
           border-bottom: 1px solid #ddd; font-size: 1em; }
.images { display: grid; grid-template-columns: repeat(var(--cols), minmax(0, 1fr)); gap: 6px; max-width: 100%; }
.images figure { margin: 0; min-width: 0; text-align: center; }
.images img { display: block; width: 100%; max-width: var(--max-width); height: auto; margin: 0 auto;
              background: #f4f4f4; }
.images figcaption { font-size: 0.75em; color: #333; overflow-wrap: anywhere; }
svg { max-width: 100%; height: auto; }
pre { white-space: pre-wrap; }
table.metrics { border-collapse: collapse; margin: 4px 0; }
table.metrics th, table.metrics td { padding: 2px 8px; }
table.metrics td + td { text-align: right; font-variant-numeric: tabular-nums; }
@media (max-width: 900px) { .images { grid-template-columns: repeat(min(var(--cols), 4), minmax(0, 1fr)); } }
"""


class HTML:
    """``web_dir/index.html`` with its images under ``web_dir/images/``. ``refresh`` > 0 reloads the page every
    ``refresh`` seconds (the training page, which train.py rewrites while it runs)."""

    def __init__(self, web_dir: str | Path, title: str, refresh: int = 0):
        self.web_dir = Path(web_dir)
        self.img_dir = self.web_dir / "images"
        self.img_dir.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.doc = dominate.document(title=title)
        self.entries = 0  # rows of images added so far
        with self.doc.head:
            meta(charset="utf-8")
            meta(name="viewport", content="width=device-width, initial-scale=1")
            style(raw(CSS))
            if refresh > 0:
                meta(http_equiv="refresh", content=str(refresh))
        with self.doc:
            h1(title, style="font-size: 1.4em;")

    def get_image_dir(self) -> Path:
        return self.img_dir

    def add_header(self, text: str) -> None:
        """An entry's header (an input's name, an epoch): it stays at the top of the window while its images show."""
        with self.doc:
            h3(text, cls="entry")

    def add_text(self, text: str) -> None:
        with self.doc:
            p(text)

    def add_details(self, title: str, text: str, open_: bool = False) -> None:
        """A folded block of preformatted text, such as the run's options."""
        with self.doc:
            with details(**({"open": "open"} if open_ else {})):
                summary(title)
                pre(text, style="font-size: 0.85em;")

    def add_raw(self, markup: str) -> None:
        """Markup inserted as is, e.g. an inline ``<svg>``."""
        with self.doc:
            raw(markup)

    def add_images(self, ims: list[str], txts: list[str], links: list[str], width: int = 256, ncols: int = 0) -> None:
        """A grid of captioned images: ``ims`` and ``links`` are paths relative to ``images/``, ``txts`` their
        captions; ``ncols`` > 0 columns (a new row every ``ncols`` images), else all in one row. The columns share
        the page's width, and an image is shown at most ``width`` pixels wide.

        Each ``src`` carries the file's modification time as a query, so that a reloaded page shows an image that
        was rewritten under the same name instead of the browser's cached copy. Width and height attributes (read
        from the file) keep the layout still while lazily loaded images arrive.
        """
        items = list(zip(ims, txts, links))
        cols = ncols if ncols > 0 else max(len(items), 1)
        lazy = self.entries >= EAGER_ENTRIES
        self.entries += 1
        grid = div(cls="images", style=f"--cols: {cols}; --max-width: {width}px;")
        self.doc.add(grid)
        with grid:
            for im, txt, link in items:
                size = self._size(im)
                attrs = {"width": size[0], "height": size[1]} if size else {}
                if lazy:
                    attrs["loading"] = "lazy"
                with figure():
                    with a(href=f"images/{link}"):
                        img(src=f"images/{im}{self._version(im)}", alt=txt, decoding="async", **attrs)
                    figcaption(txt)

    def _size(self, name: str) -> tuple[int, int] | None:
        try:
            with Image.open(self.img_dir / name) as im:  # reads the header only
                return im.size
        except OSError:
            return None

    def _version(self, name: str) -> str:
        try:
            return f"?v={(self.img_dir / name).stat().st_mtime_ns}"
        except OSError:
            return ""

    def save(self) -> Path:
        path = self.web_dir / "index.html"
        atomic_write_text(path, self.doc.render())
        return path

"""Web pages built with dominate: a title, headers, text, rows of captioned images, and raw markup (an SVG plot).

Used for the training page (``checkpoints/<name>/web/index.html``) and test.py's results page.
"""

from __future__ import annotations

from pathlib import Path

import dominate
from dominate.tags import a, br, details, h1, h3, img, meta, p, pre, summary, table, td, tr
from dominate.util import raw

from .util import atomic_write_text


class HTML:
    """``web_dir/index.html`` with its images under ``web_dir/images/``. ``refresh`` > 0 reloads the page every
    ``refresh`` seconds (the training page, which train.py rewrites while it runs)."""

    def __init__(self, web_dir: str | Path, title: str, refresh: int = 0):
        self.web_dir = Path(web_dir)
        self.img_dir = self.web_dir / "images"
        self.img_dir.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.doc = dominate.document(title=title)
        with self.doc.head:
            meta(charset="utf-8")
            if refresh > 0:
                meta(http_equiv="refresh", content=str(refresh))
        with self.doc:
            h1(title, style="font-size: 1.4em;")

    def get_image_dir(self) -> Path:
        return self.img_dir

    def add_header(self, text: str) -> None:
        with self.doc:
            h3(text)

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
        """Rows of images: ``ims`` and ``links`` are paths relative to ``images/``, ``txts`` their captions;
        ``ncols`` > 0 starts a new row every ``ncols`` images.

        Each ``src`` carries the file's modification time as a query, so that a reloaded page shows an image that
        was rewritten under the same name instead of the browser's cached copy.
        """
        items = list(zip(ims, txts, links))
        step = ncols if ncols > 0 else max(len(items), 1)
        t = table(border=1, style="table-layout: fixed;")
        self.doc.add(t)
        with t:
            for start in range(0, len(items), step):
                with tr():
                    for im, txt, link in items[start : start + step]:
                        with td(style="word-wrap: break-word;", halign="center", valign="top"):
                            with p():
                                with a(href=f"images/{link}"):
                                    img(style=f"width:{width}px", src=f"images/{im}{self._version(im)}", alt=txt)
                                br()
                                p(txt)

    def _version(self, name: str) -> str:
        try:
            return f"?v={(self.img_dir / name).stat().st_mtime_ns}"
        except OSError:
            return ""

    def save(self) -> Path:
        path = self.web_dir / "index.html"
        atomic_write_text(path, self.doc.render())
        return path

"""A results page built with dominate: a title, headers, and rows of captioned images."""

from __future__ import annotations

from pathlib import Path

import dominate
from dominate.tags import a, br, h3, img, meta, p, table, td, tr

from .util import atomic_write_text


class HTML:
    """``web_dir/index.html`` with its images under ``web_dir/images/``. ``refresh`` > 0 reloads the page."""

    def __init__(self, web_dir: str | Path, title: str, refresh: int = 0):
        self.web_dir = Path(web_dir)
        self.img_dir = self.web_dir / "images"
        self.img_dir.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.doc = dominate.document(title=title)
        if refresh > 0:
            with self.doc.head:
                meta(http_equiv="refresh", content=str(refresh))

    def get_image_dir(self) -> Path:
        return self.img_dir

    def add_header(self, text: str) -> None:
        with self.doc:
            h3(text)

    def add_text(self, text: str) -> None:
        with self.doc:
            p(text)

    def add_images(self, ims: list[str], txts: list[str], links: list[str], width: int = 256) -> None:
        """One row: ``ims`` and ``links`` are paths relative to ``images/``, ``txts`` their captions."""
        t = table(border=1, style="table-layout: fixed;")
        self.doc.add(t)
        with t:
            with tr():
                for im, txt, link in zip(ims, txts, links):
                    with td(style="word-wrap: break-word;", halign="center", valign="top"):
                        with p():
                            with a(href=f"images/{link}"):
                                img(style=f"width:{width}px", src=f"images/{im}")
                            br()
                            p(txt)

    def save(self) -> Path:
        path = self.web_dir / "index.html"
        atomic_write_text(path, self.doc.render())
        return path

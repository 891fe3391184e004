"""The results page fits the window: 16 visuals per input in two rows that scale to the page, with 200+ inputs,
lazily loaded images and a header that stays on top, checked in headless Chromium."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_browser_pages import CHROMIUM, Browser

from util import html

LABELS = [f"{kind}_{side}_{what}" for side in "AB" for kind in ("real", "fake", "rec") for what in ("img", "seg")]
LABELS += ["real_A_overlay", "fake_B_overlay", "real_B_overlay", "fake_A_overlay"]
ENTRIES = 220


def make_page(root):
    page = html.HTML(root, "Experiment = toy, Phase = test, Epoch = latest")
    page.add_details("options", "x\n" * 3)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(root / "images" / "x.png")
    for i in range(ENTRIES):
        page.add_header(f"input{i:04d}")
        page.add_images(["x.png"] * len(LABELS), LABELS, ["x.png"] * len(LABELS), width=256, ncols=8)
    return page.save()


def test_page_markup_lazy_after_the_first_entries(tmp_path):
    text = make_page(tmp_path).read_text()
    assert text.count('loading="lazy"') == (ENTRIES - html.EAGER_ENTRIES) * len(LABELS)
    assert 'width="64"' in text and 'height="64"' in text  # the layout does not jump as images arrive
    assert "<table" not in text and 'name="viewport"' in text


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (.ci/run does)")
@pytest.mark.parametrize("width", [1280, 700])
def test_page_fits_the_window(tmp_path, width):
    index = make_page(tmp_path)
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        browser.open(index.as_uri())
        assert browser.eval("document.documentElement.scrollWidth <= window.innerWidth")  # no horizontal scrolling
        right = browser.eval("Math.max(...[...document.images].map(i => i.getBoundingClientRect().right))")
        assert right <= width
        first = browser.eval("document.images[0].getBoundingClientRect().width")
        assert 40 < first <= 256  # scaled to the columns, never beyond the given width
        # Scrolled deep into the page: the current input's name is still on top of the window.
        browser.eval("document.querySelectorAll('h3.entry')[150].nextElementSibling.scrollIntoView(); true")
        browser.eval("window.scrollBy(0, 40); true")
        on_top = browser.eval("document.elementFromPoint(30, 8).closest('h3.entry')?.textContent")
        assert on_top == "input0150"
        assert browser.wait_for("document.images[150 * 16].complete && document.images[150 * 16].naturalWidth > 0")
    finally:
        browser.close()

"""test.py's results page (util/results_page.py): mask overlays, the order of a row, and the page itself."""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from util.results_page import overlay_masks, overlay_visuals, results_page, results_visuals, save_images


def test_overlay_masks():
    image = np.full((8, 10, 3), 100, np.uint8)
    masks = -np.ones((3, 8, 10), np.float32)
    masks[0, 2:6, 2:6] = 1  # one instance, one empty slot, then another instance
    masks[2, 0:2, 7:10] = 1
    out = overlay_masks(image, masks)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[7, 0] == 100).all()  # background untouched
    assert not (out[3, 3] == 100).all() and not (out[0, 8] == 100).all()
    assert not (out[3, 3] == out[0, 8]).all()  # a colour per instance
    assert (out[2, 2] != out[3, 3]).any()  # outline drawn solid, inside blended
    with pytest.raises(ValueError):
        overlay_masks(image, masks[:, :4])


class FakeModel:
    """The two things the page reads of a model: its visuals and ``overlay_visuals`` with ``get_instance_masks``."""

    def __init__(self, visual_names: list[str], overlays: dict[str, str]):
        g = torch.Generator().manual_seed(0)
        self.visual_names, self.overlay_visuals = visual_names, overlays
        for name in visual_names:
            setattr(self, name, torch.rand(1, 3, 8, 10, generator=g) * 2 - 1)
        self.masks = {key: -torch.ones(1, 2, 8, 10) for key in overlays.values()}
        for m in self.masks.values():
            m[0, 0, 2:5, 3:7] = 1

    def get_current_visuals(self):
        return OrderedDict((name, getattr(self, name)) for name in self.visual_names)

    def get_instance_masks(self):
        return self.masks


INSTAGAN_VISUALS = [
    "real_A_img",
    "fake_B_img",
    "rec_A_img",
    "real_A_seg",
    "fake_B_seg",
    "rec_A_seg",
    "real_B_img",
    "fake_A_img",
    "rec_B_img",
    "real_B_seg",
    "fake_A_seg",
    "rec_B_seg",
]
INSTAGAN_OVERLAYS = {"real_A_img": "real_A", "fake_B_img": "fake_B", "real_B_img": "real_B", "fake_A_img": "fake_A"}


def test_each_block_of_visuals_is_followed_by_its_overlays():
    model = FakeModel(INSTAGAN_VISUALS, INSTAGAN_OVERLAYS)
    row = results_visuals(model)
    assert list(row) == [
        *INSTAGAN_VISUALS[:6],
        "real_A_overlay",
        "fake_B_overlay",
        *INSTAGAN_VISUALS[6:],
        "real_B_overlay",
        "fake_A_overlay",
    ]
    assert all(im.dtype == np.uint8 and im.shape == (8, 10, 3) for im in row.values())
    # The overlay draws the masks the model names over the image it names: inside the instance it differs from the
    # plain image, outside it does not.
    plain, overlaid = row["fake_B_img"], row["fake_B_overlay"]
    assert (plain[0, 0] == overlaid[0, 0]).all() and (plain[3, 5] != overlaid[3, 5]).any()


def test_a_model_without_overlays_gets_its_visuals_only():
    model = FakeModel(["real_A", "fake_B", "rec_A"], {})
    assert overlay_visuals(model) == {}
    assert list(results_visuals(model)) == ["real_A", "fake_B", "rec_A"]


def test_results_page_with_one_row(tmp_path):
    opt = SimpleNamespace(name="run", phase="test", checkpoints_dir=str(tmp_path / "ck"), dataroot="data")
    page = results_page(tmp_path / "web", opt, "latest", "--ngf 8")
    model = FakeModel(INSTAGAN_VISUALS, INSTAGAN_OVERLAYS)
    save_images(page, results_visuals(model), "/data/testA/img_07.png", width=64)
    index = page.save()
    html = index.read_text()
    assert "Experiment = run, Phase = test, Epoch = latest" in html and "--ngf 8" in html
    files = sorted(p.name for p in (tmp_path / "web" / "images").iterdir())
    assert files == sorted(f"img_07_{label}.png" for label in results_visuals(model))
    assert all(f"images/{name}" in html for name in files)

"""scripts/edit_masks.py: each edit is exact, edited folders are in the dataset layout, one page per image."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import ROOT
from masks_helpers import disc, save_untrained_instagan, write_png
from PIL import Image

from data.image_folder import index_masks

sys.path.insert(0, str(ROOT / "scripts"))
import edit_masks  # noqa: E402

SHAPE = (40, 48)


def square(y0, y1, x0, x1):
    m = np.zeros(SHAPE, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_shift_is_the_shifted_array():
    m = disc(SHAPE, 20, 20, 6)
    assert np.array_equal(edit_masks.shift(m, 5, -3), np.roll(np.roll(m, 5, axis=1), -3, axis=0))
    cut = edit_masks.shift(m, 30, 0)  # partly out of the image: cut, not wrapped
    assert cut[:, :10].sum() == 0 and 0 < cut.sum() < m.sum()


def test_flip_mirrors_within_the_bounding_box():
    m = square(5, 15, 10, 20) | square(5, 8, 20, 30)  # an L shape
    flipped = edit_masks.flip(m)
    assert np.array_equal(flipped[5:15, 10:30], m[5:15, 10:30][:, ::-1])
    assert flipped.sum() == m.sum() and np.array_equal(edit_masks.flip(flipped), m)


def test_scale_doubles_a_square_about_its_centre_and_one_is_identity():
    m = square(15, 21, 20, 26)  # 6 x 6, centre (17.5, 22.5)
    assert np.array_equal(edit_masks.scale(m, 1.0), m)
    big = edit_masks.scale(m, 2.0)
    ys, xs = np.nonzero(big)
    assert big.sum() == 144 and (ys.min(), ys.max(), xs.min(), xs.max()) == (12, 23, 17, 28)


def test_remove_and_add_keep_the_layout_order():
    a, b = disc(SHAPE, 10, 10, 8), disc(SHAPE, 30, 35, 5)
    other = square(0, 40, 30, 48)
    out = edit_masks.apply_edit([a, b], "remove:0", None)
    assert len(out) == 1 and np.array_equal(out[0], b)
    out = edit_masks.apply_edit([a, b], "add:x:0", lambda stem: [other])
    assert len(out) == 2 and np.array_equal(out[0], other) and np.array_equal(out[1], a)  # b is hidden under it
    with pytest.raises(SystemExit, match="instances 0..1"):
        edit_masks.apply_edit([a, b], "flip:5", None)
    with pytest.raises(SystemExit, match="unknown --edit"):
        edit_masks.apply_edit([a, b], "rotate:0", None)


@pytest.mark.slow
def test_edited_folders_and_one_page(tmp_path):
    root = tmp_path / "data"
    for stem, masks in (("0000", [disc(SHAPE, 20, 14, 8), disc(SHAPE, 20, 36, 5)]), ("0001", [square(2, 12, 2, 12)])):
        image = np.full((*SHAPE, 3), 100, np.uint8)
        for m in masks:
            image[m] = (220, 60, 50)
        write_png(root / "testA" / f"{stem}.png", image)
        write_png(root / "testB" / f"{stem}.png", image)
        for k, m in enumerate(masks):
            write_png(root / "testA_seg" / f"{stem}_{k}.png", m.astype(np.uint8) * 255)
    ckpt = tmp_path / "checkpoints"
    save_untrained_instagan(ckpt, size=SHAPE)
    out = tmp_path / "edits"
    edits = ["shift:1:-4:2", "scale:0:0.5", "flip:0", "remove:1", "add:0001:0"]
    folders = edit_masks.main(
        [
            "--dataroot",
            str(root),
            "--image",
            "0000",
            "--out",
            str(out),
            "--page",
            "--name",
            "gan",
            "--checkpoints_dir",
            str(ckpt),
            "--gpu_ids",
            "-1",
            *sum([["--edit", e] for e in edits], []),
        ]
    )
    assert sorted(folders) == sorted(["original", *[edit_masks.edit_name(e) for e in edits]])
    shifted = index_masks(folders["shift_1_-4_2"] / "testA_seg")["0000"]
    small = np.asarray(Image.open(shifted[1])) > 127
    assert np.array_equal(small, edit_masks.shift(disc(SHAPE, 20, 36, 5), -4, 2))
    assert len(index_masks(folders["remove_1"] / "testA_seg")["0000"]) == 1
    assert "0001" in index_masks(folders["remove_1"] / "testA_seg")  # the other images' masks are copied
    assert sorted(index_masks(folders["add_0001_0"] / "testA_seg")["0000"]) == [0, 1, 2]  # k = 0, 1, ... by area
    page = (out / "index.html").read_text()
    for name in folders:
        assert f"{name}_output.png" in page and (out / "images" / f"{name}_output.png").is_file()
    with pytest.raises(SystemExit, match="--overwrite"):
        edit_masks.main(["--dataroot", str(root), "--image", "0000", "--out", str(out), "--edit", "flip:0"])

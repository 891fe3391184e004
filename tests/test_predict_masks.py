"""scripts/predict_masks.py and test.py --masks predict:...: the dataset layout, no overwriting, Mask R-CNN's path."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from conftest import ROOT
from masks_helpers import images_only, save_untrained_instagan, trained_predictor
from PIL import Image

from data.check import check_dataset
from data.image_folder import index_masks, make_dataset

sys.path.insert(0, str(ROOT / "scripts"))
import predict_masks  # noqa: E402

# Untrained: its scores favour arbitrary categories, so every category is kept ("all"); a few detections, small input.
MASKRCNN = [
    "--predictor",
    "maskrcnn",
    "--weights",
    "random",
    "--classes",
    "all",
    "--score_thresh",
    "0",
    "--mask_thresh",
    "0",
    "--maskrcnn_size",
    "64",
    "--maskrcnn_detections",
    "4",
    "--min_area",
    "1",
]


def assert_layout(root, phase="test"):
    """Masks named <stem>_0.. by decreasing area, each 0/255 at its image's size, and data.check passes."""
    total = 0
    for d in "AB":
        images = {p.stem: p for p in make_dataset(root / f"{phase}{d}")}
        for stem, by_k in index_masks(root / f"{phase}{d}_seg").items():
            assert stem in images and sorted(by_k) == list(range(len(by_k)))
            areas = []
            for k in sorted(by_k):
                mask = np.asarray(Image.open(by_k[k]))
                assert mask.shape == Image.open(images[stem]).size[::-1] and set(np.unique(mask)) <= {0, 255}
                areas.append(int((mask > 0).sum()))
            assert areas == sorted(areas, reverse=True)
            total += len(by_k)
    report = check_dataset(root, [phase])
    assert report.ok, report.format()
    return total


def test_maskrcnn_with_random_weights_runs_the_whole_path(toy_root, tmp_path):
    """Boxes → masks → files, with an untrained Mask R-CNN (nothing is downloaded)."""
    root = images_only(toy_root, tmp_path / "photos")
    summary = predict_masks.main(["--dataroot", str(root), "--phase", "test", *MASKRCNN, "--quiet"])
    assert summary["A"]["instances"] > 0 and summary["B"]["instances"] > 0
    assert assert_layout(root) == summary["A"]["instances"] + summary["B"]["instances"]


def test_refuses_to_overwrite_and_overwrite_replaces(toy_root, tmp_path):
    root = images_only(toy_root, tmp_path / "photos")
    stem = make_dataset(root / "testA")[0].stem
    keep = root / "testA_seg" / f"{stem}_7.png"
    keep.parent.mkdir()
    Image.fromarray(np.full((48, 48), 255, np.uint8)).save(keep)
    before = keep.read_bytes()
    with pytest.raises(SystemExit, match="masks already exist"):
        predict_masks.main(["--dataroot", str(root), *MASKRCNN, "--quiet"])
    assert keep.read_bytes() == before and not (root / "testB_seg").exists()  # nothing written, nothing lost
    summary = predict_masks.main(["--dataroot", str(root), *MASKRCNN, "--quiet", "--skip_existing"])
    assert summary["A"]["skipped_existing"] == 1 and keep.read_bytes() == before
    predict_masks.main(["--dataroot", str(root), *MASKRCNN, "--quiet", "--overwrite"])
    assert not keep.exists()  # the stale extra mask of the image is gone, the new ones are in the layout
    assert_layout(root)


def test_unknown_class_and_missing_weights_are_clear_errors(tmp_path):
    from models.predictors import MaskRCNNPredictor, parse_classes

    with pytest.raises(ValueError, match="did you mean sheep"):
        parse_classes("shep,giraffe")
    with pytest.raises(FileNotFoundError, match="--weights"):
        MaskRCNNPredictor(parse_classes("sheep"), str(tmp_path / "none.pth"))


def test_test_py_predicts_masks_for_images_without_any(toy_root, tmp_path):
    """test.py --masks predict:maskrcnn on a dataroot with no _seg folder at all: one results page."""
    import test as test_script

    root = images_only(toy_root, tmp_path / "photos")
    ckpt = tmp_path / "checkpoints"
    name = save_untrained_instagan(ckpt)
    page = test_script.main(
        [
            "--dataroot",
            str(root),
            "--name",
            name,
            "--checkpoints_dir",
            str(ckpt),
            "--results_dir",
            str(tmp_path / "results"),
            "--ngf",
            "4",
            "--loadSizeH",
            "48",
            "--loadSizeW",
            "48",
            "--fineSizeH",
            "48",
            "--fineSizeW",
            "48",
            "--gpu_ids",
            "-1",
            "--masks",
            "predict:maskrcnn",
            *MASKRCNN[2:],
        ]
    )
    html = page.read_text()
    assert len(set(re.findall(r"images/(\d+)_fake_B_img", html))) == 3
    predicted = page.parent / "predicted_masks"
    assert index_masks(predicted / "testA_seg") and index_masks(predicted / "testB_seg")
    assert sorted(p.name for p in root.iterdir()) == ["testA", "testB"]  # the dataroot is left as it was


@pytest.mark.slow
def test_predict_masks_with_a_trained_predictor(tmp_path_factory, tmp_path):
    data, ckpt, name = trained_predictor(tmp_path_factory)
    root = images_only(data, tmp_path / "photos")
    summary = predict_masks.main(
        ["--dataroot", str(root), "--predictor", name, "--checkpoints_dir", str(ckpt), "--quiet"]
    )
    assert summary["A"]["images"] == 16 and summary["A"]["instances"] > 0
    assert assert_layout(root) > 0

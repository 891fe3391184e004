"""The toy main job's pieces: ``--n_blocks`` and the toy dataset generator (datasets/make_toy_dataset.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_train_opts
from PIL import Image

from datasets.make_toy_dataset import main as make_toy
from datasets.make_toy_dataset import make_sample
from models import create_model
from models.generators import ResnetBlock, define_G


def count_blocks(net) -> int:
    return sum(isinstance(m, ResnetBlock) for m in net.modules())


def n_params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def test_n_blocks_sets_the_resnet_blocks_of_both_encoders():
    nine, three = define_G(3, 3, 8), define_G(3, 3, 8, n_blocks=3)
    assert count_blocks(nine) == 18 and count_blocks(three) == 6  # encoder_img and encoder_seg each
    assert count_blocks(three.encoder_img) == count_blocks(three.encoder_seg) == 3
    # One block at width 4·ngf = 32: two 3x3 convs with bias (instance norm has no affine parameters).
    per_block = 2 * (32 * 32 * 9 + 32)
    assert n_params(nine) - n_params(three) == 2 * 6 * per_block
    with pytest.raises(ValueError, match="n_blocks"):
        define_G(3, 3, 8, n_blocks=-1)


def test_n_blocks_reaches_the_model_and_defaults_to_the_papers_nine(toy_root, tmp_path):
    default = create_model(make_train_opts(toy_root, tmp_path))
    assert default.opt.n_blocks == 9 and count_blocks(default.netG_A) == count_blocks(default.netG_B) == 18
    small = create_model(make_train_opts(toy_root, tmp_path, "--n_blocks", "2"))
    assert count_blocks(small.netG_A) == count_blocks(small.netG_B) == 4


def extent(mask: np.ndarray) -> float:
    """Area / bounding-box area of a boolean mask."""
    ys, xs = np.nonzero(mask)
    return mask.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))


def test_toy_shapes_separate_by_extent_and_have_equal_areas():
    rng = np.random.default_rng(0)
    extents, areas = {"A": [], "B": []}, {"A": [], "B": []}
    for domain in "AB":
        for _ in range(40):
            # One instance far from the border, so no mask is cut or occluded.
            _, masks = make_sample(rng, domain, 64, p_empty=0.0, radius=(0.15, 0.15))
            extents[domain].append(extent(masks[-1]))
            areas[domain].append(masks[-1].sum())
    assert max(extents["A"]) < 0.86 and min(extents["B"]) > 0.95  # disc ≈ π/4, axis-aligned square 1
    assert abs(np.mean(areas["A"]) - np.mean(areas["B"])) < 0.1 * np.mean(areas["A"])


def test_rotated_squares_and_empty_share(tmp_path):
    rng = np.random.default_rng(1)
    rotated = [
        extent(make_sample(rng, "B", 64, p_empty=0.0, radius=(0.15, 0.15), rotate=True)[1][-1]) for _ in range(20)
    ]
    assert min(rotated) < 0.8  # most rotations make the bounding box larger than the square
    assert all(not make_sample(rng, "A", 32, p_empty=1.0)[1] for _ in range(5))


def box_aspect(mask: np.ndarray) -> float:
    """Bounding-box height / width of a boolean mask."""
    ys, xs = np.nonzero(mask)
    return (ys.max() - ys.min() + 1) / (xs.max() - xs.min() + 1)


def test_aspect_makes_upright_rectangles_of_the_discs_area(tmp_path):
    rng = np.random.default_rng(5)  # small instances in a large image: none is cut by the border
    shapes = {
        aspect: [make_sample(rng, "B", 256, p_empty=0.0, radius=(0.05, 0.05), aspect=aspect)[1][-1] for _ in range(20)]
        for aspect in (1.0, 1.7)
    }
    discs = [make_sample(rng, "A", 256, p_empty=0.0, radius=(0.05, 0.05), aspect=1.7)[1][-1] for _ in range(20)]
    assert all(box_aspect(m) == pytest.approx(1.7, abs=0.15) and extent(m) > 0.95 for m in shapes[1.7])
    assert all(box_aspect(m) == pytest.approx(1.0, abs=0.1) for m in shapes[1.0] + discs)  # discs stay discs
    for masks in shapes.values():  # the same area as the discs'
        assert np.mean([m.sum() for m in masks]) == pytest.approx(np.mean([m.sum() for m in discs]), rel=0.1)
    with pytest.raises(SystemExit):
        make_toy(["--save_root", str(tmp_path / "bad"), "--aspect", "0"])
    assert not (tmp_path / "bad").exists()


def test_make_toy_writes_the_layout_and_checks_its_arguments(tmp_path):
    make_toy(["--save_root", str(tmp_path / "t"), "--size", "40", "--n_train", "5", "--n_test", "4", "--p_empty", "0"])
    for split in ("trainA", "trainB", "testA", "testB"):
        images = sorted((tmp_path / "t" / split).glob("*.png"))
        assert len(images) == (5 if split.startswith("train") else 4)
        for image in images:
            masks = sorted((tmp_path / "t" / f"{split}_seg").glob(f"{image.stem}_*.png"))
            assert masks, f"{image} has no instance with --p_empty 0"
            assert Image.open(image).size == (40, 40) and set(np.unique(np.array(Image.open(masks[0])))) == {0, 255}
    with pytest.raises(SystemExit):
        make_toy(["--save_root", str(tmp_path / "bad"), "--p_empty", "2"])
    with pytest.raises(SystemExit):
        make_toy(["--save_root", str(tmp_path / "bad"), "--r_min", "0.3", "--r_max", "0.2"])


def test_backgrounds_and_pixel_noise_choose_what_is_drawn(tmp_path):
    from datasets.make_toy_dataset import background

    rng = np.random.default_rng(2)
    for _ in range(10):
        # A noiseless gradient is smooth: neighbouring pixels differ by a few levels at most.
        smooth = np.asarray(background(rng, 32, ("gradient",), pixel_noise=0.0), dtype=float)
        assert np.abs(np.diff(smooth, axis=1)).max() <= 12 and np.abs(np.diff(smooth, axis=0)).max() <= 12
    # Checkers have sharp steps; pixel noise adds per-pixel variation to a gradient.
    steps = [np.abs(np.diff(np.asarray(background(rng, 32, ("checker",), 0.0), float), axis=1)).max() for _ in range(5)]
    assert max(steps) > 20
    noisy = np.asarray(background(rng, 32, ("gradient",), pixel_noise=20.0), dtype=float)
    assert np.abs(np.diff(noisy, axis=1)).mean() > 10
    for bad in (["--backgrounds", "gradient,plaid"], ["--backgrounds", ""], ["--pixel_noise", "-1"]):
        with pytest.raises(SystemExit):
            make_toy(["--save_root", str(tmp_path / "bad"), *bad])
    assert not (tmp_path / "bad").exists()


def test_max_instances_and_no_outline():
    rng = np.random.default_rng(3)
    counts = [len(make_sample(rng, "A", 64, p_empty=0.0, radius=(0.1, 0.1), max_instances=2)[1]) for _ in range(60)]
    assert set(counts) <= {1, 2} and 2 in counts  # small discs far apart enough to stay at least 8 pixels
    # Without the outline an instance is one flat colour; with it the border pixels are darker.
    for outline, n_colours in ((False, 1), (True, 2)):
        image, masks = make_sample(np.random.default_rng(4), "B", 64, p_empty=0.0, max_instances=1, outline=outline)
        pixels = np.asarray(image)[masks[0]]
        assert len(np.unique(pixels, axis=0)) == n_colours

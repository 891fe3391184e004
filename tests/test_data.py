"""The unaligned_seg dataset: layout, masks by stem, joint transforms that keep image and masks aligned."""

from __future__ import annotations

import numpy as np
import torch
from conftest import make_test_opts, make_train_opts
from PIL import Image

from data import create_dataloader, create_dataset
from data.image_folder import index_masks, masks_for


def write_pair(root, phase, domain, stem, ext, image: np.ndarray, masks: list[np.ndarray]):
    (root / f"{phase}{domain}").mkdir(parents=True, exist_ok=True)
    (root / f"{phase}{domain}_seg").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / f"{phase}{domain}" / f"{stem}{ext}")
    for k, m in enumerate(masks):
        Image.fromarray(m).save(root / f"{phase}{domain}_seg" / f"{stem}_{k}.png")


def pattern_dataset(root, n: int = 4, h: int = 40, w: int = 56) -> None:
    """Images whose red channel *is* their first mask, in folders whose names contain 'A' and 'B' elsewhere too."""
    rng = np.random.default_rng(0)
    for domain in "AB":
        for i in range(n):
            mask = np.zeros((h, w), np.uint8)
            y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
            mask[y : y + 12, x : x + 5] = 255  # a tall bar: flips and crops change where it lands
            image = np.stack([mask, rng.integers(0, 255, (h, w), dtype=np.uint8), np.full((h, w), 128, np.uint8)], -1)
            second = np.zeros((h, w), np.uint8)
            second[:4, :] = 255
            write_pair(
                root,
                "train",
                domain,
                f"img_A{i}",
                [".png", ".tiff", ".PNG", ".bmp"][i % 4],
                image,
                [mask, second] if i % 2 == 0 else [mask],
            )


def test_masks_are_found_by_stem_for_any_extension(tmp_path):
    root = tmp_path / "Adata_B"  # the 2018 code replaced every 'A' in the whole path
    pattern_dataset(root)
    index = index_masks(root / "trainA_seg")
    assert [p.name for p in masks_for(index, "img_A0", 20)] == ["img_A0_0.png", "img_A0_1.png"]
    assert [p.name for p in masks_for(index, "img_A0", 1)] == ["img_A0_0.png"]
    assert masks_for(index, "missing", 20) == []


def test_items_have_the_documented_shapes_and_ranges(tmp_path):
    root = tmp_path / "Adata_B"
    pattern_dataset(root)
    opt = make_train_opts(root, tmp_path, "--max_instances", "5")
    item = create_dataset(opt)[0]
    assert item["A"].shape == (3, 32, 40) and item["A_segs"].shape == (5, 32, 40)
    assert item["A"].min() >= -1 and item["A"].max() <= 1
    assert (item["A_segs"][2:] == -1).all()  # slots without a file are empty
    assert item["A_paths"].endswith("img_A0.png")


def test_one_random_crop_and_flip_for_the_image_and_all_its_masks(tmp_path):
    root = tmp_path / "data"
    pattern_dataset(root)
    opt = make_train_opts(root, tmp_path, "--max_instances", "4")
    dataset = create_dataset(opt)
    flipped_or_shifted = bands_seen = 0
    for trial in range(12):
        torch.manual_seed(trial)
        item = dataset[trial % 4]
        red = item["A"][0]  # the red channel was drawn as the first mask
        torch.testing.assert_close(red, item["A_segs"][0], atol=2 / 255 * 2, rtol=0)
        band = item["A_segs"][1]  # images 0 and 2: a full-width top band, which no flip or crop tilts
        if trial % 2 == 0 and band.gt(-1).any():
            bands_seen += 1
            assert (band == band[:, :1]).all(), "the band's rows are no longer constant: the mask moved sideways"
        flipped_or_shifted += int(not torch.equal(item["A_segs"][0], dataset[trial % 4]["A_segs"][0]))
    assert flipped_or_shifted > 0  # the transform really is random
    assert bands_seen > 0  # the check above ran


def test_nearest_masks_stay_binary(tmp_path):
    root = tmp_path / "data"
    pattern_dataset(root)
    item = create_dataset(make_train_opts(root, tmp_path, "--mask_interp", "nearest"))[0]
    assert set(item["A_segs"].unique().tolist()) <= {-1.0, 1.0}
    soft = create_dataset(make_train_opts(root, tmp_path))[0]["A_segs"]  # bicubic, as in the 2018 code
    assert ((soft > -1) & (soft < 1)).any()


def test_serial_batches_pair_in_order_and_test_does_not_flip(tmp_path):
    root = tmp_path / "data"
    pattern_dataset(root)
    for phase in ("test",):
        for domain in "AB":
            (root / f"{phase}{domain}").symlink_to(root / f"train{domain}")
            (root / f"{phase}{domain}_seg").symlink_to(root / f"train{domain}_seg")
    opt = make_test_opts(
        root,
        tmp_path,
        *"--serial_batches --loadSizeH 40 --loadSizeW 56 --fineSizeH 40 --fineSizeW 56".split(),
    )
    dataset = create_dataset(opt)
    a, b = dataset[1], dataset[1]
    assert a["B_paths"].endswith("img_A1.tiff") and torch.equal(a["A"], b["A"])  # deterministic at test time


def test_loader_batches_and_max_dataset_size(tmp_path):
    root = tmp_path / "data"
    pattern_dataset(root)
    opt = make_train_opts(root, tmp_path, "--batch_size", "2", "--max_dataset_size", "3")
    dataset = create_dataset(opt)
    assert len(dataset) == 3
    batch = next(iter(create_dataloader(opt, dataset)))
    assert batch["A"].shape == (2, 3, 32, 40) and batch["B_segs"].shape == (2, 20, 32, 40)
    assert len(batch["A_paths"]) == 2

"""Helpers shared by the mask tests (test_mask_predictor, test_predict_masks, test_edit_masks, test_video)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from conftest import SMALL
from PIL import Image

# The InstaGAN networks of the mask tests: untrained, as the tests check the plumbing, not the translation.
NET = ["--ngf", "4", "--gpu_ids", "-1", "--num_threads", "0"]


def save_untrained_instagan(checkpoints_dir: Path, name: str = "gan", size: tuple[int, int] = (48, 48)) -> str:
    """An InstaGAN run ``name`` with untrained weights, as test.py and the scripts load it."""
    import torch

    from models import create_model
    from options.base_options import save_options
    from options.train_options import TrainOptions

    parser = TrainOptions()
    opt = parser.parse(
        [
            "--dataroot",
            str(checkpoints_dir),
            "--name",
            name,
            "--checkpoints_dir",
            str(checkpoints_dir),
            *NET,
            "--ndf",
            "4",
            "--fineSizeH",
            str(size[0]),
            "--fineSizeW",
            str(size[1]),
            "--loadSizeH",
            str(size[0]),
            "--loadSizeW",
            str(size[1]),
        ]
    )
    torch.manual_seed(0)
    model = create_model(opt, torch.device("cpu"))
    model.save_networks("latest")
    save_options(opt, parser.parser, "train")
    return name


def disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r**2


def images_only(root: Path, dest: Path, phase: str = "test") -> Path:
    """A copy of ``root``'s ``{phase}A``/``{phase}B`` images without any mask folder."""
    for d in "AB":
        shutil.copytree(root / f"{phase}{d}", dest / f"{phase}{d}")
    return dest


def trained_predictor(tmp_path_factory) -> tuple[Path, Path, str]:
    """A mask predictor trained on a toy dataset, once per test session (the tests that use it share it):
    ``(dataroot, checkpoints_dir, name)``."""
    if not _TRAINED:
        _TRAINED.append(_train_predictor(tmp_path_factory.mktemp("masks")))
    return _TRAINED[0]


_TRAINED: list[tuple[Path, Path, str]] = []


def _train_predictor(root: Path) -> tuple[Path, Path, str]:
    import train
    from datasets.make_toy_dataset import main as make_toy

    data = root / "toy"
    make_toy(["--save_root", str(data), "--size", "48", "--n_train", "200", "--n_test", "16", "--seed", "3"])
    ckpt = root / "checkpoints"
    train.main(
        [
            "--model",
            "mask_predictor",
            "--dataroot",
            str(data),
            "--name",
            "masks",
            "--checkpoints_dir",
            str(ckpt),
            "--loadSizeH",
            "52",
            "--loadSizeW",
            "52",
            "--fineSizeH",
            "48",
            "--fineSizeW",
            "48",
            "--batch_size",
            "4",
            "--niter",
            "5",
            "--niter_decay",
            "5",
            "--gpu_ids",
            "-1",
            "--num_threads",
            "0",
            "--display_id",
            "0",
            "--print_freq",
            "400",
        ]
    )
    return data, ckpt, "masks"


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


__all__ = ["SMALL", "NET", "save_untrained_instagan", "disc", "images_only", "trained_predictor", "write_png"]

"""Translate single images with a trained InstaGAN run, outside test.py's data loader.

Used by scripts/translate_video.py (frame by frame) and scripts/edit_masks.py (one image under several mask
edits). The run's network and image-size options are read from its ``train_opt.json`` unless given.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from util.loss_plot import COLORS

from .predictors import to_tensor

# Options of a run that shape its networks and images: taken from its train_opt.json unless given on the command line.
RUN_OPTIONS = (
    "ngf",
    "netG",
    "norm",
    "input_nc",
    "output_nc",
    "no_dropout",
    "n_blocks",
    "init_type",
    "fineSizeH",
    "fineSizeW",
    "ins_per",
)


def load_translation_model(
    name: str,
    dataroot: str,
    checkpoints_dir: str = "./checkpoints",
    extra: list[str] = (),
    set_order: str | None = None,
):
    """``(opt, model, device)``: the run ``name`` built with test.py's options ``extra`` (``["--ins_max", "8"]``),
    its weights loaded; ``set_order`` overrides ``--set_order`` (``"given"``: the caller's slots as they are)."""
    from options.base_options import resolve_device
    from options.test_options import TestOptions

    from . import create_model

    extra = list(extra)
    opt = TestOptions().parse(
        ["--dataroot", str(dataroot), "--name", name, "--checkpoints_dir", str(checkpoints_dir), *extra]
    )
    saved_path = Path(checkpoints_dir) / name / "train_opt.json"
    if saved_path.is_file():
        saved = json.loads(saved_path.read_text())
        given = {a.split("=")[0].lstrip("-") for a in extra if a.startswith("--")}
        for key in RUN_OPTIONS:
            if key in saved and key not in given and hasattr(opt, key):
                setattr(opt, key, saved[key])
    if set_order is not None:
        opt.set_order = set_order
    opt.num_threads, opt.batch_size, opt.serial_batches, opt.no_flip = 0, 1, True, True
    device = resolve_device(opt)
    model = create_model(opt, device)
    model.setup(opt)
    if opt.eval:
        model.eval()
    return opt, model, device


def masks_tensor(masks: list[np.ndarray | None], shape: tuple[int, int]) -> torch.Tensor:
    """Bool ``[H, W]`` masks (None: an empty slot) → ``[1, S, H, W]`` in [-1, 1], an empty slot all -1."""
    out = -torch.ones(1, len(masks), *shape)
    for s, mask in enumerate(masks):
        if mask is not None:
            out[0, s][torch.from_numpy(np.asarray(mask, dtype=bool))] = 1.0
    return out


def overlay(image: np.ndarray, masks: list[np.ndarray | None], alpha: float = 0.5) -> np.ndarray:
    """``[H, W, 3]`` uint8 with mask (slot) s tinted in colour s."""
    out = image.astype(np.float32)
    for s, mask in enumerate(masks):
        if mask is not None:
            colour = np.array([int(COLORS[s % len(COLORS)][i : i + 2], 16) for i in (1, 3, 5)], np.float32)
            out[mask] = (1 - alpha) * out[mask] + alpha * colour
    return out.round().astype(np.uint8)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[1, 3, H, W]`` in [-1, 1] → ``[H, W, 3]`` uint8."""
    array = image[0].detach().float().cpu().clamp(-1, 1).permute(1, 2, 0).numpy()
    return ((array + 1) * 127.5).round().astype(np.uint8)


@torch.no_grad()
def translate(model, opt, image: Image.Image, masks: list[np.ndarray | None]) -> np.ndarray:
    """One image of the run's source domain (``--direction``) with its masks (at the image's size, in slot order)
    → the translation ``[H, W, 3]`` uint8. The other direction gets the same image with no instance."""
    x = to_tensor(image)
    segs = masks_tensor(masks, (image.height, image.width))
    mine, other = (x, segs), (x, -torch.ones_like(segs))
    a, b = (mine, other) if opt.direction == "AtoB" else (other, mine)
    model.set_input({"A": a[0], "B": b[0], "A_segs": a[1], "B_segs": b[1], "A_paths": ["frame"], "B_paths": ["frame"]})
    model.test()
    return to_uint8(model.fake_B_img)

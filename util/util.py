"""Small helpers: tensors to images, saving images, atomic file writes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .fileio import atomic_open, atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported)


def tensor2im(image: torch.Tensor) -> np.ndarray:
    """First sample of ``[B, C, H, W]`` (or ``[C, H, W]``) in [-1, 1] -> ``[H, W, 3]`` uint8; one channel -> gray."""
    if image.dim() == 4:
        image = image[0]
    array = image.detach().float().cpu().clamp(-1, 1).numpy()
    if array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    return ((np.transpose(array, (1, 2, 0)) + 1) / 2 * 255.0).round().astype(np.uint8)


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` streamed into ``atomic_open``: no second copy of a large checkpoint in memory."""
    with atomic_open(path) as f:
        torch.save(obj, f)


def save_image(image: np.ndarray, path: str | Path, aspect_ratio: float = 1.0) -> None:
    """Save ``[H, W, 3]`` uint8 as PNG; ``aspect_ratio`` > 1 stretches the width, < 1 the height (CycleGAN's)."""
    pil = Image.fromarray(image)
    h, w = image.shape[:2]
    if aspect_ratio > 1.0:
        pil = pil.resize((int(w * aspect_ratio), h), Image.BICUBIC)
    elif aspect_ratio < 1.0:
        pil = pil.resize((w, int(h / aspect_ratio)), Image.BICUBIC)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())

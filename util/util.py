"""Small helpers: tensors to images, saving images, atomic file writes."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def tensor2im(image: torch.Tensor) -> np.ndarray:
    """First sample of ``[B, C, H, W]`` (or ``[C, H, W]``) in [-1, 1] -> ``[H, W, 3]`` uint8; one channel -> gray."""
    if image.dim() == 4:
        image = image[0]
    array = image.detach().float().cpu().clamp(-1, 1).numpy()
    if array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    return ((np.transpose(array, (1, 2, 0)) + 1) / 2 * 255.0).round().astype(np.uint8)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``: a crash at any moment leaves
    either the old file or the new one, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: str | Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


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

"""Small helpers: tensors to images, saving images, atomic file writes."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only when the block ends without error: written to a temporary file in
    the same folder, fsynced, renamed over ``path``, and the folder fsynced. A crash or kill at any moment leaves
    either the old file or the new one, never a truncated one (and at worst a stray ``.<name>.*.tmp``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the file from the other users of a shared disk
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not every file system lets a folder be opened
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_open``)."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


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

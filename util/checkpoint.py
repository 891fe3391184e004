"""Checkpoint files, read and written safely: atomic writes, ``weights_only`` reads, errors that name the file.

The network files ``<epoch>_net_G_A.pth`` (``models/base_model.py``) and the training state ``<tag>_state.pth``
(``training/state.py``) both go through ``write_checkpoint`` and ``read_checkpoint``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from util.util import atomic_torch_save


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read; the message names the file and the fix."""


def checkpoint_tag(opt) -> str:
    """The checkpoint that ``--epoch`` and ``--load_iter`` name: ``iter_<load_iter>`` when ``--load_iter`` > 0, else
    ``--epoch`` (``latest`` or a number), as in ``<tag>_net_G_A.pth`` and ``<tag>_state.pth``."""
    return f"iter_{opt.load_iter}" if opt.load_iter > 0 else str(opt.epoch)


# ------------------------------------------------------------------------------------------------------ folders


def ensure_writable_dir(folder: str | Path, option: str = "--checkpoints_dir") -> Path:
    """Create ``folder`` and prove it writable, or fail naming it and the option, before anything is trained."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write_test.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CheckpointError(
            f"cannot write to {folder} ({type(e).__name__}: {e.strerror or e}); {option} must name a folder this "
            f"user can write to: pass another {option}, or fix its permissions or free its disk"
        ) from e
    return folder


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete temporary files left by an atomic write that a kill interrupted (``.<name>.<random>.tmp``)."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        if path.is_file() and (".pth." in path.name or path.name.startswith(".write_test.")):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# --------------------------------------------------------------------------------------------------- save, load


def write_checkpoint(obj, path: Path) -> None:
    try:
        atomic_torch_save(obj, path)
    except OSError as e:
        raise CheckpointError(
            f"cannot write checkpoint {path} ({type(e).__name__}: {e.strerror or e}); the previous file is intact. "
            "Free disk space or pass another --checkpoints_dir, then resume with --continue_train"
        ) from e


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu"):
    """``torch.load(weights_only=True)`` with errors that name the file and say what to do."""
    path = Path(path)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 -- unpickling, zip and I/O errors all mean the same to the user
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [""]
        reason = next((line for line in lines if "Unpickler error" in line), lines[0])
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(e).__name__}: {reason}): the file is damaged (an "
            "interrupted copy, a full disk), not a PyTorch checkpoint, or holds objects other than tensors and "
            "plain values. Use another checkpoint (--epoch <n>), or delete or move it away"
        ) from e

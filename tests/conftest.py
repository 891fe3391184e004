"""Shared fixtures: a tiny toy dataset and small option sets that train in seconds on the CPU."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Small networks and images: every test trains on the CPU in seconds.
SMALL = (
    "--ngf 8 --ndf 8 --loadSizeH 36 --loadSizeW 44 --fineSizeH 32 --fineSizeW 40 --gpu_ids -1 --num_threads 0".split()
)


# Smaller still, for tests that train whole runs: an iteration takes well under a second on one CPU thread.
# TINY_NETS is valid for train.py and test.py alike; TINY adds train.py's quiet settings (no page, Visdom or prints).
TINY_NETS = [
    *SMALL,
    *"--ngf 4 --ndf 4 --loadSizeH 20 --loadSizeW 24 --fineSizeH 16 --fineSizeW 20 --n_layers_D 2".split(),
]
TINY = [*TINY_NETS, "--display_id", "0", "--no_html", "--print_freq", "1000", "--display_freq", "100000"]


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(2)


@pytest.fixture
def one_thread():
    """Tiny networks run fastest on one thread, and a busy machine does not slow them down by oversubscription."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """3 training images per domain, 24x24, so an epoch of batch 1 is 3 iterations."""
    from datasets.make_toy_dataset import main as make_toy

    root = tmp_path_factory.mktemp("tiny")
    make_toy(["--save_root", str(root), "--size", "24", "--n_train", "3", "--n_test", "1", "--seed", "2"])
    return root


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    """The built-in toy dataset, small: 6 train and 3 test images per domain, 48x48."""
    from datasets.make_toy_dataset import main as make_toy

    root = tmp_path_factory.mktemp("toy")
    make_toy(["--save_root", str(root), "--size", "48", "--n_train", "6", "--n_test", "3", "--seed", "1"])
    return root


def _where(dataroot, tmp_path) -> list[str]:
    return ["--dataroot", str(dataroot), "--checkpoints_dir", str(tmp_path / "checkpoints"), "--name", "t"]


def make_train_opts(dataroot, tmp_path, *extra: str):
    from options.train_options import TrainOptions

    return TrainOptions().parse([*_where(dataroot, tmp_path), *SMALL, "--display_id", "0", *extra])


def make_test_opts(dataroot, tmp_path, *extra: str):
    from options.test_options import TestOptions

    results = ["--results_dir", str(tmp_path / "results")]
    return TestOptions().parse([*_where(dataroot, tmp_path), *results, *SMALL, *extra])


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the SHA-256 of its bytes: equal snapshots mean nothing was written."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def latest_networks(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The four ``latest_net_*.pth`` state dicts of a run folder, by network name."""
    return {n: torch.load(folder / f"latest_net_{n}.pth", weights_only=True) for n in ("G_A", "G_B", "D_A", "D_B")}

"""The NaN/inf guard: a non-finite loss stops training, naming the loss, the iteration and the input files, and
keeps the last good checkpoint; ``--skip_nonfinite`` skips the batch before it reaches the weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY, snapshot

import train
from models.base_model import NonFiniteLossError
from models.insta_gan_model import InstaGANModel
from training.state import load_training_state

RUN = [*TINY, *"--ins_max 2 --ins_per 2 --niter 1 --niter_decay 0 --save_latest_freq 1 --max_dataset_size 3".split()]
pytestmark = pytest.mark.usefixtures("one_thread")


def plant_nan(monkeypatch, at_batch: int, on_call=None) -> None:
    """Make ``cyc_A`` NaN in the ``at_batch``-th call of compute_G_loss (one sequential step per batch here)."""
    original, calls = InstaGANModel.compute_G_loss, []

    def compute_G_loss(self, A, B):
        losses = original(self, A, B)
        calls.append(1)
        if len(calls) == at_batch:
            if on_call is not None:
                on_call()
            losses["cyc_A"] = losses["cyc_A"] * float("nan")
        return losses

    monkeypatch.setattr(InstaGANModel, "compute_G_loss", compute_G_loss)


def argv(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["--dataroot", str(root), "--checkpoints_dir", str(tmp_path), "--name", "n", *RUN, *extra]


def test_nan_stops_training_naming_loss_iteration_and_files_and_keeps_the_last_good_checkpoint(
    toy_root, tmp_path, monkeypatch
):
    folder = tmp_path / "n"
    before: dict[str, str] = {}
    plant_nan(monkeypatch, at_batch=2, on_call=lambda: before.update(snapshot(folder)))
    with pytest.raises(NonFiniteLossError) as error:
        train.main(argv(toy_root, tmp_path))
    message = str(error.value)
    assert "non-finite loss cyc_A" in message
    assert "epoch 1, iteration 2 of the epoch (total_iters 2)" in message
    files = message.split("input files: ")[1].split(". ")[0].split(", ")
    assert len(files) == 2 and "trainA" in files[0] and "trainB" in files[1] and all(Path(f).is_file() for f in files)
    assert f"the last good checkpoint, {folder / 'latest_state.pth'}, is kept" in message
    assert "--skip_nonfinite" in message
    # Nothing was saved after the bad batch: the checkpoint files are those of batch 1.
    after = snapshot(folder)
    assert {k: v for k, v in after.items() if k.endswith(".pth")} == {
        k: v for k, v in before.items() if k.endswith(".pth")
    }
    assert load_training_state(folder / "latest_state.pth")["total_iters"] == 1


def test_skip_nonfinite_skips_the_batch_before_the_optimizer_step(toy_root, tmp_path, monkeypatch):
    plant_nan(monkeypatch, at_batch=2)
    train.main(argv(toy_root, tmp_path, "--skip_nonfinite"))
    folder = tmp_path / "n"
    state = load_training_state(folder / "latest_state.pth")
    assert state["skipped_batches"] == 1 and state["total_iters"] == 3
    for optimizer in state["optimizers"]:  # 3 batches, one step each, the planted one skipped before G and D
        assert {int(s["step"]) for s in optimizer["state"].values()} == {2}
    assert all(torch.isfinite(v).all() for net in state["networks"].values() for v in net.values())
    log = (folder / "loss_log.txt").read_text()
    assert "skipped batch: non-finite loss cyc_A at sequential step 1 at epoch 1, iteration 2" in log

"""Resuming with other schedule options: the resumed run follows the options it is given.

A run of ``--niter 1`` continued with ``--niter 2 --continue_train`` must train its second epoch exactly as a run of
``--niter 2`` does (it used to go on at the first schedule's end, learning rate 0), and say that ``--niter`` changed;
a schedule that ends before the epochs already trained is refused before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY, latest_networks, snapshot

import train
from training.state import load_training_state
from util.checkpoint import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")


def run(root: Path, checkpoints: Path, name: str, *extra: str) -> None:
    argv = [
        "--dataroot",
        str(root),
        "--checkpoints_dir",
        str(checkpoints),
        "--name",
        name,
        *TINY,
        "--max_dataset_size",
        "2",
        "--pool_size",
        "2",
        "--deterministic",
        *extra,
    ]
    try:
        train.main(argv)
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("policy", ["lambda", "cosine"])
def test_a_longer_niter_on_resume_trains_on_bit_identical_to_a_run_started_with_it(tiny_root, tmp_path, capsys, policy):
    """--niter 1, then --niter 2 --continue_train == --niter 2 from the start: weights, Adam moments, learning rate."""
    common = ["--niter_decay", "0", "--lr_policy", policy]
    run(tiny_root, tmp_path, "straight", "--niter", "2", *common)
    run(tiny_root, tmp_path, "extended", "--niter", "1", *common)
    after_one = latest_networks(tmp_path / "extended")
    capsys.readouterr()
    run(tiny_root, tmp_path, "extended", "--niter", "2", *common, "--continue_train")
    out = capsys.readouterr().out

    assert "options changed since latest_state.pth: --niter: 1 -> 2" in out
    # Epoch 2 trains at the full rate under both policies with --niter 2 (lambda: constant; cosine: half of it).
    expected_lr = 0.0002 if policy == "lambda" else 0.0001
    assert f"at epoch 2, batch 0 of the epoch, total_iters 2, learning rate {expected_lr:.7f}" in out
    straight, extended = latest_networks(tmp_path / "straight"), latest_networks(tmp_path / "extended")
    for net in straight:
        for key in straight[net]:
            assert torch.equal(straight[net][key], extended[net][key]), f"{net}.{key} differs from the straight run"
    moved = [k for k, v in extended["G_A"].items() if v.is_floating_point() and not torch.equal(v, after_one["G_A"][k])]
    assert len(moved) > len(extended["G_A"]) // 2, "the resumed epoch left G_A as it was: learning rate 0"
    sa, sb = (load_training_state(tmp_path / n / "latest_state.pth") for n in ("straight", "extended"))
    assert sa["epoch"] == sb["epoch"] == 3
    for oa, ob in zip(sa["optimizers"], sb["optimizers"]):
        assert [g["lr"] for g in oa["param_groups"]] == [g["lr"] for g in ob["param_groups"]]
        assert all(torch.equal(oa["state"][i]["exp_avg_sq"], ob["state"][i]["exp_avg_sq"]) for i in oa["state"])


def test_a_schedule_ending_before_the_epochs_trained_is_refused_and_writes_nothing(tiny_root, tmp_path):
    run(tiny_root, tmp_path, "r", "--niter", "2", "--niter_decay", "0")
    before = snapshot(tmp_path / "r")
    with pytest.raises(CheckpointError) as error:
        run(tiny_root, tmp_path, "r", "--niter", "1", "--niter_decay", "0", "--continue_train")
    message = str(error.value)
    assert "has trained 2 epoch(s)" in message and "--niter 1 + --niter_decay 0 = 1 epoch(s)" in message
    assert "the run had --niter 2 --niter_decay 0" in message and "add up to at least 2" in message
    assert snapshot(tmp_path / "r") == before


def test_resuming_a_finished_run_with_its_own_schedule_says_so_and_trains_nothing(tiny_root, tmp_path, capsys):
    run(tiny_root, tmp_path, "r", "--niter", "1", "--niter_decay", "0")
    before = latest_networks(tmp_path / "r")
    capsys.readouterr()
    run(tiny_root, tmp_path, "r", "--niter", "1", "--niter_decay", "0", "--continue_train")
    out = capsys.readouterr().out
    assert "training already finished (1 epochs)" in out and "options changed" not in out
    after = latest_networks(tmp_path / "r")
    assert all(torch.equal(before[n][k], after[n][k]) for n in before for k in before[n])

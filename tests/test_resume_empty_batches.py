"""Exact resume when the first batch after it has no instances.

Every optimizer step gives each parameter a gradient, zero where no loss reaches it, so Adam moves it by its momentum
also in a step that gives it no gradient (``encoder_seg`` and D's ``feature_seg`` on an image without instances). A
resumed process starts without gradients: were the zeros carried over from earlier steps instead of made by each
step, Adam would skip those parameters there and the resumed run would drift away from the one never stopped.
"""

from __future__ import annotations

import os
import shutil
import signal

import pytest
import torch
from conftest import TINY, latest_networks

import train
from models.insta_gan_model import InstaGANModel

pytestmark = pytest.mark.usefixtures("one_thread")


def test_resume_before_a_batch_without_instances_equals_an_uninterrupted_run(tiny_root, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    # In file order (--serial_batches): trainA/0000 keeps its masks, every other image has none. The run stops after
    # the first batch, so the resumed process starts with a batch whose segment encoders get no gradient.
    first = sorted(p.stem for p in (data / "trainA").iterdir())[0]
    for mask in [*(data / "trainA_seg").iterdir(), *(data / "trainB_seg").iterdir()]:
        if mask.parent.name == "trainB_seg" or not mask.name.startswith(f"{first}_"):
            mask.unlink()
    assert any((data / "trainA_seg").iterdir()), f"the toy data's trainA/{first} should have instances"
    common = "--niter 1 --niter_decay 0 --serial_batches --deterministic --pool_size 2".split()

    def argv(name: str, *extra: str) -> list[str]:
        return [
            "--dataroot",
            str(data),
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--name",
            name,
            *TINY,
            *common,
            *extra,
        ]

    original, calls = InstaGANModel.optimize_parameters, []

    def stop_after_first(self):
        original(self)
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the batch completes, 'latest' is saved, the process exits

    try:
        train.main(argv("whole"))
        monkeypatch.setattr(InstaGANModel, "optimize_parameters", stop_after_first)
        with pytest.raises(SystemExit):
            train.main(argv("parts"))
        monkeypatch.setattr(InstaGANModel, "optimize_parameters", original)
        train.main(argv("parts", "--continue_train"))
    finally:
        torch.use_deterministic_algorithms(False)
    whole, parts = latest_networks(tmp_path / "ck" / "whole"), latest_networks(tmp_path / "ck" / "parts")
    for net in whole:
        for key in whole[net]:
            assert torch.equal(whole[net][key], parts[net][key]), f"{net}.{key} differs after the resume"

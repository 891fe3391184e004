"""The command line end to end: train.py then test.py on the toy data, checkpoints and a results page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SMALL
from PIL import Image


def run(script: str, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.mark.slow
def test_train_then_test_from_the_command_line(toy_root, tmp_path):
    common = ["--dataroot", str(toy_root), "--name", "toy", *SMALL]
    out = run(
        "train.py",
        *common,
        *"--niter 1 --niter_decay 1 --batch_size 2 --print_freq 2 --display_id 0 --save_epoch_freq 1".split(),
        cwd=tmp_path,
    )
    assert re.search(r"\(epoch: 1, iters: \d+, time: [\d.]+, data: [\d.]+\) D_A: [\d.]+ G_A", out)
    assert "End of epoch 2 / 2" in out
    ckpt = tmp_path / "checkpoints" / "toy"
    for epoch in ("latest", "1", "2"):
        for net in ("G_A", "G_B", "D_A", "D_B"):
            assert (ckpt / f"{epoch}_net_{net}.pth").is_file()
    assert (ckpt / "train_opt.txt").is_file() and (ckpt / "train_opt.json").is_file()
    log = (ckpt / "loss_log.txt").read_text()
    assert "ctx_B" in log and "cyc_A" in log

    out = run(
        "test.py", *common, "--ins_max", "20", "--ins_per", "2", "--loadSizeH", "32", "--loadSizeW", "40", cwd=tmp_path
    )
    page = tmp_path / "results" / "toy" / "test_latest" / "index.html"
    assert page.is_file(), out
    html = page.read_text()
    images = re.findall(r'src="images/([^"?]+)', html)  # page links may carry ?v= cache busters
    for label in ("real_A_img", "fake_B_img", "rec_A_img", "fake_B_seg", "real_B_seg", "rec_B_img"):
        assert sum(label in name for name in images) == 3  # one row per test image
    for name in set(images):
        with Image.open(page.parent / "images" / name) as im:
            im.verify()


def test_no_gpu_falls_back_to_the_cpu_with_a_warning(toy_root, tmp_path):
    """The default --gpu_ids 0 must not crash on a machine without CUDA."""
    import torch

    from options.base_options import resolve_device
    from options.train_options import TrainOptions

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    opt = TrainOptions().parse(["--dataroot", str(toy_root)])
    with pytest.warns(UserWarning, match="using the CPU"):
        assert resolve_device(opt).type == "cpu"

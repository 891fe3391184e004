"""--model cycle_gan, the paper's baseline: CycleGAN's networks, one G and one D update per batch, train.py/test.py
from the command line, the dataset's masks kept for the evaluation only, and exact resume."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, TINY, TINY_NETS, make_test_opts, make_train_opts

from data import create_dataloader, create_dataset
from models import create_model
from models.cycle_gan_model import CycleGANModel
from models.cycle_gan_networks import define_patch_D, define_resnet_G
from models.layers import count_parameters

# Tiny networks and images (a 2-layer D, 6 residual blocks of 16 channels): an iteration takes a fraction of a second.
CYCLE_GAN = "--model cycle_gan --netD n_layers --netG resnet_6blocks".split()
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: fastest on one thread

NETS = [*TINY_NETS, *CYCLE_GAN]
RUN = [*TINY, *CYCLE_GAN]


def test_networks_are_cyclegans():
    """CycleGAN's published sizes (ngf = ndf = 64): G 11.378 M, D 2.765 M parameters; CycleGAN's layer names."""
    G = define_resnet_G(3, 3, 64, "resnet_9blocks")
    D = define_patch_D(3, 64, "basic")
    assert round(count_parameters(G) / 1e6, 3) == 11.378
    assert round(count_parameters(D) / 1e6, 3) == 2.765
    assert {"model.1.weight", "model.10.conv_block.1.weight", "model.26.weight"} <= set(G.state_dict())
    assert "model.11.weight" in D.state_dict()  # the last conv, as in CycleGAN's NLayerDiscriminator
    six = define_resnet_G(3, 3, 8, "resnet_6blocks")
    assert sum(type(m).__name__ == "ResnetBlock" for m in six.modules()) == 6
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    y = define_resnet_G(3, 3, 8, "basic", n_blocks=2)(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert define_patch_D(3, 8, "n_layers", n_layers_D=2)(x).shape == (2, 1, 6, 8)  # 32x40 → 16x20 → 8x10 → 7x9 → 6x8
    sn = define_patch_D(3, 8, "basic", spectral_norm="original")
    assert "model.0.parametrizations.weight.original" in sn.state_dict()
    with pytest.raises(ValueError, match="unknown --netG 'set'"):
        define_resnet_G(3, 3, 8, "set")
    with pytest.raises(ValueError, match="--netG basic --n_blocks 3"):
        define_resnet_G(3, 3, 8, "resnet_6blocks", n_blocks=3)


def test_options_defaults_follow_the_2018_cycle_gan(toy_root, tmp_path):
    opt = make_train_opts(toy_root, tmp_path, "--model", "cycle_gan")
    assert (opt.netG, opt.netD, opt.no_dropout, opt.spectral_norm) == ("resnet_9blocks", "basic", True, "none")
    assert (opt.lambda_A, opt.lambda_B, opt.lambda_identity) == (10.0, 10.0, 1.0)
    assert make_train_opts(toy_root, tmp_path, "--model", "cycle_gan", "--lambda_idt", "0.5").lambda_identity == 0.5
    assert make_train_opts(toy_root, tmp_path).netG == "set"  # insta_gan's defaults are untouched


def test_one_step_updates_everything_once_and_keeps_the_masks_for_evaluation(toy_root, tmp_path):
    torch.manual_seed(0)
    opt = make_train_opts(toy_root, tmp_path, "--model", "cycle_gan", "--batch_size", "2", "--netG", "resnet_6blocks")
    model = create_model(opt)
    model.setup(opt)
    data = next(iter(create_dataloader(opt, create_dataset(opt))))
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in model.networks().items()}
    steps = {"G": 0, "D": 0}
    for key, optimizer in (("G", model.optimizer_G), ("D", model.optimizer_D)):
        optimizer.register_step_post_hook(lambda *args, key=key: steps.__setitem__(key, steps[key] + 1))
    model.set_input(data)
    model.optimize_parameters()
    assert steps == {"G": 1, "D": 1}
    losses = model.get_current_losses()
    assert list(losses) == ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
    assert all(torch.isfinite(torch.tensor(v)) and v > 0 for v in losses.values())
    for name, net in model.networks().items():
        moved = [not torch.equal(p, q) for p, q in zip(net.parameters(), before[name])]
        assert all(moved), f"net{name}: {moved.count(False)} parameters did not move"
    assert list(model.get_current_visuals()) == [f"{name}_img" for name in model.visual_names]

    masks = model.get_instance_masks()
    assert set(masks) == {"real_A", "real_B"} and model.overlay_visuals == {}
    for key, side in (("real_A", "A"), ("real_B", "B")):
        count = int(((data[f"{side}_segs"] + 1).flatten(2).sum(-1) > 0).sum(1).max())
        assert masks[key].shape == (2, count, 32, 40)
        assert masks[key].min() >= -1 and masks[key].max() <= 1
        area = (masks[key] + 1).flatten(2).sum(-1)
        assert torch.all(area[:, :-1] >= area[:, 1:])  # largest first, empty slots last


def test_test_time_model_has_only_generators_and_identity_visuals(toy_root, tmp_path):
    torch.manual_seed(0)
    train_opt = make_train_opts(toy_root, tmp_path, "--model", "cycle_gan")
    trained = create_model(train_opt)
    trained.save_networks("latest")
    opt = make_test_opts(toy_root, tmp_path, "--model", "cycle_gan")
    model = create_model(opt)
    model.setup(opt)
    assert model.model_names == ["G_A", "G_B"]
    model.set_input(next(iter(create_dataloader(opt, create_dataset(opt)))))
    model.test()
    visuals = model.get_current_visuals()
    names = ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]
    assert list(visuals) == [f"{name}_img" for name in names]  # InstaGAN's file names, for evaluate.py
    assert torch.allclose(visuals["fake_B_img"], trained.netG_A(visuals["real_A_img"]))


@pytest.mark.slow
def test_cycle_gan_trains_and_tests_from_the_command_line(toy_root, tmp_path):
    def run(script: str, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, str(ROOT / script), *args], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout + result.stderr

    common = ["--dataroot", str(toy_root), "--name", "cg", *NETS]
    out = run(
        "train.py",
        *common,
        "--niter",
        "1",
        "--niter_decay",
        "1",
        "--batch_size",
        "2",
        "--print_freq",
        "2",
        "--display_id",
        "0",
        "--save_epoch_freq",
        "1",
        "--update_html_freq",
        "2",
    )
    assert re.search(r"\(epoch: 1, iters: \d+, .*\) D_A: [\d.]+ G_A: [\d.]+ cycle_A: [\d.]+ idt_A", out)
    assert "End of epoch 2 / 2" in out
    ckpt = tmp_path / "checkpoints" / "cg"
    for epoch in ("latest", "1", "2"):
        for net in ("G_A", "G_B", "D_A", "D_B"):
            assert (ckpt / f"{epoch}_net_{net}.pth").is_file()
    assert (ckpt / "latest_state.pth").is_file() and (ckpt / "web" / "index.html").is_file()

    run("test.py", *common, "--loadSizeH", "16", "--loadSizeW", "20")
    page = tmp_path / "results" / "cg" / "test_latest" / "index.html"
    images = re.findall(r'src="images/([^"?]+)', page.read_text())
    for label in ("real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"):
        assert sum(name.endswith(f"_{label}_img.png") for name in images) == 3, label  # one per test image


def test_resume_equals_an_uninterrupted_run(toy_root, tmp_path, monkeypatch, one_thread):
    """SIGTERM in the middle of epoch 1, then --continue_train: the same weights as a run never stopped."""
    import train

    argv = [
        "--dataroot",
        str(toy_root),
        "--checkpoints_dir",
        str(tmp_path),
        *RUN,
        "--niter",
        "1",
        "--niter_decay",
        "1",
        "--max_dataset_size",
        "3",
        "--deterministic",
        "--pool_size",
        "2",
        "--save_latest_freq",
        "100",
    ]
    try:
        train.main([*argv, "--name", "whole"])
        original, calls = CycleGANModel.optimize_parameters, []

        def optimize_and_signal(self):
            original(self)
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGTERM)

        monkeypatch.setattr(CycleGANModel, "optimize_parameters", optimize_and_signal)
        with pytest.raises(SystemExit):
            train.main([*argv, "--name", "cut"])
        monkeypatch.setattr(CycleGANModel, "optimize_parameters", original)
        train.main([*argv, "--name", "cut", "--continue_train"])
    finally:
        torch.use_deterministic_algorithms(False)
    for net in ("G_A", "G_B", "D_A", "D_B"):
        whole = torch.load(tmp_path / "whole" / f"latest_net_{net}.pth", weights_only=True)
        cut = torch.load(tmp_path / "cut" / f"latest_net_{net}.pth", weights_only=True)
        assert all(torch.equal(whole[k], cut[k]) for k in whole), net

"""Options: the 2018 README commands parse unchanged, aliases, validation, no side effects, saved options."""

from __future__ import annotations

import json
import shlex

import pytest

from options.base_options import parse_gpu_ids, save_options
from options.test_options import TestOptions
from options.train_options import TrainOptions

# The train and test commands of the original InstaGAN README, verbatim after the program name.
ORIGINAL_TRAIN = [
    "--dataroot ./datasets/jeans2skirt_ccp --model insta_gan --name jeans2skirt_ccp_instagan --loadSizeH 330 "
    "--loadSizeW 220 --fineSizeH 300 --fineSizeW 200 --niter 400 --niter_decay 200",
    "--dataroot ./datasets/pants2skirt_mhp --model insta_gan --name pants2skirt_mhp_instagan --loadSizeH 270 "
    "--loadSizeW 180 --fineSizeH 240 --fineSizeW 160",
    "--dataroot ./datasets/shp2gir_coco --model insta_gan --name shp2gir_coco_instagan --loadSizeH 220 "
    "--loadSizeW 220 --fineSizeH 200 --fineSizeW 200",
    "--dataroot ./datasets/shp2gir_coco --model insta_gan --name shp2gir_coco_instagan --loadSizeH 220 "
    "--loadSizeW 220 --fineSizeH 200 --fineSizeW 200 --batch_size 4 --gpu_ids 0,1,2,3",
]
ORIGINAL_TEST = [
    "--dataroot ./datasets/jeans2skirt_ccp --model insta_gan --name jeans2skirt_ccp_instagan --loadSizeH 300 "
    "--loadSizeW 200 --fineSizeH 300 --fineSizeW 200",
    "--dataroot ./datasets/pants2skirt_mhp --model insta_gan --name pants2skirt_mhp_instagan --loadSizeH 240 "
    "--loadSizeW 160 --fineSizeH 240 --fineSizeW 160 --ins_per 2 --ins_max 20",
    "--dataroot ./datasets/shp2gir_coco --model insta_gan --name shp2gir_coco_instagan --loadSizeH 200 "
    "--loadSizeW 200 --fineSizeH 200 --fineSizeW 200 --ins_per 2 --ins_max 20 --phase sample --epoch 200",
]


def assert_parsed_as_given(opt, command: str) -> None:
    """Every ``--option value`` of the command is read into ``opt.option`` (its 2018 name), with the value given."""
    words = shlex.split(command)
    for flag, value in zip(words[::2], words[1::2]):
        parsed = getattr(opt, flag.removeprefix("--"))
        expected = parse_gpu_ids(value) if flag == "--gpu_ids" else type(parsed)(value)
        assert parsed == expected, f"{flag} {value} was read as {parsed!r}"


@pytest.mark.parametrize("command", ORIGINAL_TRAIN)
def test_original_train_commands_parse(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = TrainOptions().parse(shlex.split(command))
    assert_parsed_as_given(opt, command)
    assert opt.isTrain and opt.netG == opt.netD == "set" and opt.dataset_mode == "unaligned_seg"
    assert not list(tmp_path.iterdir())  # parsing wrote nothing


@pytest.mark.parametrize("command", ORIGINAL_TEST)
def test_original_test_commands_parse(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = TestOptions().parse(shlex.split(command))
    assert_parsed_as_given(opt, command)
    assert not opt.isTrain and opt.results_dir == "./results/" and opt.num_test == 50
    assert not list(tmp_path.iterdir())


def test_defaults_follow_the_2018_code_and_the_paper():
    opt = TrainOptions().parse(["--dataroot", "d"])
    expected = {
        **dict(batch_size=1, lr=0.0002, lr_D=0.0001, beta1=0.5, niter=100, niter_decay=100, pool_size=50),
        **dict(norm="instance", netG="set", netD="set", model="insta_gan", gpu_ids=[0], display_port=8097),
        **dict(display_freq=400, print_freq=100, save_latest_freq=5000, save_epoch_freq=5, max_instances=20),
        **dict(loadSizeH=220, loadSizeW=220, fineSizeH=200, fineSizeW=200, ins_max=4, ins_per=2),
        **dict(set_order="decreasing", lambda_A=10.0, lambda_B=10.0, lambda_idt=1.0, lambda_ctx=1.0, no_lsgan=False),
        **dict(no_dropout=True, ngf=64, ndf=64, n_layers_D=3, init_type="normal", init_gain=0.02, epoch_count=1),
        **dict(lr_policy="lambda", direction="AtoB", checkpoints_dir="./checkpoints"),
    }
    assert {k: getattr(opt, k) for k in expected} == expected


def test_cyclegan_spellings_are_aliases():
    aliases = "--n_epochs 7 --n_epochs_decay 3 --load_size 286 --crop_size 256 --preprocess resize --gan_mode vanilla"
    opt = TrainOptions().parse(["--dataroot", "d", *aliases.split()])
    assert (opt.niter, opt.niter_decay, opt.resize_or_crop, opt.no_lsgan) == (7, 3, "resize", True)
    assert (opt.loadSizeH, opt.loadSizeW, opt.fineSizeH, opt.fineSizeW) == (286, 286, 256, 256)
    assert TestOptions().parse(["--dataroot", "d", "--ntest", "5"]).num_test == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--netG", "resnet_9blocks"], "invalid choice"),
        (["--norm", "group"], "invalid choice"),
        (["--model", "pix2pix"], "invalid choice"),
        (["--model", "cycle_gan", "--netG", "set"], "invalid choice for --model cycle_gan"),
        (["--dataset_mode", "aligned"], "invalid choice"),
        (["--ins_max", "5", "--ins_per", "2"], "multiple of --ins_per"),
        (["--fineSizeH", "202"], "multiples of 4"),
        (["--loadSizeH", "100"], "larger than the resize"),
        (["--ins_max", "24", "--ins_per", "2"], "cannot exceed --max_instances"),
    ],
)
def test_bad_options_fail_with_a_message(args, message, capsys):
    with pytest.raises(SystemExit):
        TrainOptions().parse(["--dataroot", "d", *args])
    assert message in capsys.readouterr().err


def test_gpu_ids_and_suffix():
    assert parse_gpu_ids("0,2") == [0, 2] and parse_gpu_ids("-1") == []
    opt = TrainOptions().parse(["--dataroot", "d", "--name", "run", "--suffix", "{netG}_ngf{ngf}", "--gpu_ids", "-1"])
    assert opt.name == "run_set_ngf64" and opt.gpu_ids == []


def test_resolved_options_are_saved_as_text_and_json(tmp_path):
    parser = TrainOptions()
    opt = parser.parse(["--dataroot", "d", "--checkpoints_dir", str(tmp_path), "--name", "x", "--lr", "0.001"])
    folder = save_options(opt, parser.parser, "train")
    text = (folder / "train_opt.txt").read_text()
    assert "lr: 0.001" in text and "[default: 0.0002]" in text
    saved = json.loads((folder / "train_opt.json").read_text())
    assert saved["lr"] == 0.001 and saved["ins_max"] == 4 and saved["name"] == "x"

"""Every bad input of issue 6 fails with an error naming the file or option and the fix, and changes no file that
was written before (the run's checkpoints, options and logs are compared byte for byte). Modes the 2018 code read
with ``convert`` (grayscale, palette, RGBA, RGB masks) still load, and 16-bit files are scaled, not clipped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_NETS, snapshot
from PIL import Image

import test as test_script
import train
from data.unaligned_seg_dataset import BadSampleError
from training.state import load_training_state
from util.checkpoint import CheckpointError

SIZE = 24  # images are SIZE x SIZE; the crop below is 16 x 20
NETS = [*TINY_NETS, "--ins_max", "2", "--ins_per", "2"]
RUN = [*TINY, "--ins_max", "2", "--ins_per", "2", "--niter", "1", "--niter_decay", "0"]
pytestmark = pytest.mark.usefixtures("one_thread")


def write_dataset(root: Path, n: int = 2) -> Path:
    """``n`` RGB images per domain, each with one square instance mask."""
    rng = np.random.default_rng(0)
    for d in "AB":
        (root / f"train{d}").mkdir(parents=True)
        (root / f"train{d}_seg").mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(root / f"train{d}/{i}.png")
            mask = np.zeros((SIZE, SIZE), np.uint8)
            mask[4:14, 5 + i : 15 + i] = 255
            mask[4:14, 15 + i] = 100  # a soft, anti-aliased edge (valid): it must survive every mode
            Image.fromarray(mask).save(root / f"train{d}_seg/{i}_0.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A finished tiny run: (dataset, checkpoints folder holding run 'b')."""
    base = tmp_path_factory.mktemp("trained")
    torch.set_num_threads(1)
    data = write_dataset(base / "data")
    train.main(["--dataroot", str(data), "--checkpoints_dir", str(base / "ck"), "--name", "b", *RUN])
    return data, base / "ck"


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the dataset and the run; ``run.fails(exc, ...)`` resumes it with --continue_train, expects
    ``exc`` and checks that no file of the run changed; returns the message."""
    data, ck = tmp_path / "data", tmp_path / "ck"
    shutil.copytree(trained[0], data)
    shutil.copytree(trained[1], ck)

    class Run:
        def __init__(self):
            self.data, self.ck, self.folder = data, ck, ck / "b"

        def argv(self, *extra: str, options=RUN) -> list[str]:
            return ["--dataroot", str(self.data), "--checkpoints_dir", str(self.ck), "--name", "b", *options, *extra]

        def fails(self, exc, *extra: str, program=train, continue_train: bool = True) -> str:
            before = snapshot(self.ck)
            options = RUN if program is train else [*NETS, "--phase", "train"]
            argv = self.argv(*extra, *(["--continue_train"] if continue_train else []), options=options)
            with pytest.raises(exc) as error:
                program.main(argv)
            assert snapshot(self.ck) == before, "a failed run changed files of the run"
            return str(error.value)

    return Run()


def each(folder: Path):
    return sorted(p for p in folder.iterdir() if p.is_file())


# ----------------------------------------------------------------------------------------------------- folders


def test_missing_dataroot(run):
    message = run.fails(FileNotFoundError, "--dataroot", str(run.data / "nowhere"))
    assert f"--dataroot {run.data / 'nowhere'} does not exist" in message and "expected layout" in message


def test_missing_phase_folder(run):
    shutil.rmtree(run.data / "trainB")
    message = run.fails(FileNotFoundError)
    assert f"image folder {run.data / 'trainB'} is missing" in message and "--phase train" in message


def test_empty_image_folder(run):
    for p in each(run.data / "trainA"):
        p.unlink()
    message = run.fails(FileNotFoundError)
    assert f"image folder {run.data / 'trainA'} has no images" in message


def test_missing_mask_folder_warns_and_reads_zero_instances(tmp_path):
    from conftest import make_train_opts

    from data import create_dataset

    root = write_dataset(tmp_path / "d")
    shutil.rmtree(root / "trainB_seg")
    with pytest.warns(UserWarning, match=f"mask folder {root / 'trainB_seg'} is missing: every image of"):
        dataset = create_dataset(make_train_opts(root, tmp_path))
    assert (dataset[0]["B_segs"] == -1).all() and (dataset[0]["A_segs"] > -1).any()


# ------------------------------------------------------------------------------------------------- image files


@pytest.mark.parametrize("damage", ["garbage", "truncated", "zero-byte"])
@pytest.mark.parametrize("what", ["image", "mask"])
def test_unreadable_files(run, what, damage):
    folder = run.data / ("trainA" if what == "image" else "trainA_seg")
    for p in each(folder):  # every file of the domain, so the first sample read meets one
        raw = p.read_bytes()
        p.write_bytes({"garbage": b"not an image at all", "truncated": raw[: len(raw) // 2], "zero-byte": b""}[damage])
    message = run.fails(BadSampleError)
    assert f"{what} {folder}" in message
    assert ("zero-byte" if damage == "zero-byte" else "damaged, truncated or not an image") in message
    assert "python -m data.check" in message and "--skip_bad_samples" in message


def test_mask_size_differs_from_image(run):
    for p in each(run.data / "trainA_seg"):
        Image.open(p).resize((SIZE - 4, SIZE)).save(p)
    message = run.fails(BadSampleError)
    assert f"is {SIZE - 4}x{SIZE} but its image" in message and f"is {SIZE}x{SIZE} (WxH)" in message


def test_color_mask_is_an_error(run):
    for p in each(run.data / "trainA_seg"):
        gray = np.asarray(Image.open(p))
        Image.fromarray(np.stack([gray, gray // 2, gray * 0], -1)).save(p)  # a red-ish label map
    message = run.fails(BadSampleError)
    assert "color channels differ" in message and "trainA_seg" in message and "Save one gray (L) mask" in message


def test_image_smaller_than_the_crop(run):
    message = run.fails(BadSampleError, "--resize_or_crop", "crop", "--fineSizeH", "28", "--fineSizeW", "28")
    assert f"is {SIZE}x{SIZE} (WxH), smaller than the crop --fineSizeW/--fineSizeH 28x28" in message
    assert "--resize_or_crop resize_and_crop" in message


def test_more_masks_than_max_instances(run):
    mask = run.data / "trainB_seg" / "1_0.png"
    for k in range(1, 21):
        shutil.copy(mask, run.data / "trainB_seg" / f"1_{k}.png")
    message = run.fails(ValueError)
    assert f"image {run.data / 'trainB' / '1.png'} has 21 masks" in message and "--max_instances is 20" in message
    assert "--max_instances 21" in message and "--ignore_extra_masks" in message


# ---------------------------------------------------------------------------------------------------- options


def test_ins_max_not_a_multiple_of_ins_per(run, capsys):
    run.fails(SystemExit, "--ins_max", "3", "--ins_per", "2")
    assert "--ins_max (3) must be a positive multiple of --ins_per (2)" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--model", "--netG", "--netD", "--norm", "--dataset_mode"])
def test_unknown_names(run, capsys, option):
    run.fails(SystemExit, option, "nonsense")
    err = capsys.readouterr().err
    assert f"argument {option}: invalid choice: 'nonsense' (choose from" in err


def test_checkpoints_folder_that_cannot_be_written(run):
    blocker = run.ck / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    message = run.fails(CheckpointError, "--checkpoints_dir", str(blocker), continue_train=False)
    assert f"cannot write to {blocker / 'b'}" in message and "pass another --checkpoints_dir" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_checkpoints_folder(run):
    run.folder.chmod(0o500)
    try:
        message = run.fails(CheckpointError)
    finally:
        run.folder.chmod(0o755)
    assert f"cannot write to {run.folder}" in message


# ------------------------------------------------------------------------------------------------ checkpoints


def test_checkpoint_of_another_architecture(run):
    message = run.fails(CheckpointError, "--ngf", "8")
    assert "does not match the network built from the current options" in message
    assert "shape mismatch: encoder_img.1.weight: checkpoint (4, 3, 7, 7) vs model (8, 3, 7, 7)" in message
    assert "--ngf: 4 -> 8" in message  # the options that differ from the checkpoint's


def test_network_file_of_another_architecture_in_test_py(run, tmp_path):
    message = run.fails(
        RuntimeError, "--ngf", "8", "--results_dir", str(tmp_path / "r"), program=test_script, continue_train=False
    )
    assert f"{run.folder / 'latest_net_G_A.pth'} does not match" in message and "encoder_img.1.weight" in message


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_training_state(run, damage):
    path = run.folder / "latest_state.pth"
    raw = path.read_bytes()
    path.write_bytes(b"\x00garbage" * 100 if damage == "garbage" else raw[: len(raw) // 2])
    message = run.fails(CheckpointError)
    assert f"{path} is not a readable checkpoint" in message and "damaged" in message and "--epoch" in message


def test_corrupt_network_file_in_test_py(run, tmp_path):
    path = run.folder / "latest_net_G_A.pth"
    path.write_bytes(path.read_bytes()[:100])
    message = run.fails(
        CheckpointError, "--results_dir", str(tmp_path / "r"), program=test_script, continue_train=False
    )
    assert f"{path} is not a readable checkpoint" in message


def test_checkpoint_with_code_in_it_is_refused(run):
    path = run.folder / "latest_state.pth"
    torch.save({"format": "instagan-training-state", "payload": np.arange(3)}, path)  # a NumPy array: code to run
    message = run.fails(CheckpointError)
    assert "holds objects other than tensors and plain values" in message


# ------------------------------------------------------------------------------------------------ bad samples


def test_skip_bad_samples_counts_and_logs(run):
    bad = run.data / "trainA" / "0.png"
    bad.write_bytes(b"")
    train.main(run.argv("--name", "s", "--skip_bad_samples", "--save_epoch_freq", "1"))
    folder = run.ck / "s"
    state = load_training_state(folder / "latest_state.pth")
    assert len(state["bad_samples"]) == 1 and str(bad) in state["bad_samples"][0]
    log = (folder / "loss_log.txt").read_text()
    assert f"skipped bad sample: image {bad} is an empty (zero-byte) file" in log


# ------------------------------------------------------------------------------- modes read like the 2018 code


def _load_first(root: Path, tmp_path: Path) -> dict:
    from conftest import make_train_opts

    from data import create_dataset

    opt = make_train_opts(root, tmp_path, "--resize_or_crop", "none", "--no_flip", "--serial_batches")
    return create_dataset(opt)[0]


def _rewrite(path: Path, convert) -> None:
    image = Image.open(path)
    image.load()
    path.unlink()
    convert(image).save(path.with_suffix(".png"))


IMAGE_MODES = {  # how the file is rewritten, and what the loader must then see
    "grayscale": (lambda im: im.convert("L"), lambda im: im.convert("L").convert("RGB")),
    "rgba": (lambda im: im.convert("RGBA"), lambda im: im),
    "palette": (lambda im: im.convert("P"), lambda im: im.convert("P").convert("RGB")),
    "16-bit": (
        lambda im: Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257),
        lambda im: im.convert("L").convert("RGB"),
    ),
}


@pytest.mark.parametrize("mode", list(IMAGE_MODES))
def test_image_modes_load_as_rgb(tmp_path, mode):
    convert, expected = IMAGE_MODES[mode]
    root = write_dataset(tmp_path / "d")
    path = root / "trainA" / "0.png"
    original = Image.open(path).convert("RGB")
    _rewrite(path, convert)
    got = _load_first(root, tmp_path)["A"]
    want = torch.from_numpy(np.asarray(expected(original), dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1
    assert torch.allclose(got, want, atol=1e-5)


MASK_MODES = {
    "rgb-gray": lambda im: im.convert("RGB"),
    "palette-gray": lambda im: im.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE),
    "16-bit": lambda im: Image.fromarray(np.asarray(im).astype(np.uint16) * 257),  # clipping would harden the edge
    "1-bit": lambda im: im.convert("1", dither=Image.Dither.NONE),
}


@pytest.mark.parametrize("mode", list(MASK_MODES))
def test_mask_modes_read_as_grayscale(tmp_path, mode):
    root = write_dataset(tmp_path / "d")
    mask = root / "trainA_seg" / "0_0.png"
    if mode == "1-bit":  # one bit has no soft edge: compare with the hard mask
        _rewrite(mask, lambda im: im.point(lambda v: 255 if v > 127 else 0))
    reference = _load_first(root, tmp_path)["A_segs"]
    assert ((reference > -1) & (reference < 1)).any() or mode == "1-bit"
    _rewrite(mask, MASK_MODES[mode])
    assert torch.equal(_load_first(root, tmp_path)["A_segs"], reference)

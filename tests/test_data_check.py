"""data.check: a clean dataset passes; every planted problem is found, named by file, with the right severity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.check import (
    ERROR,
    KINDS,
    WARNING,
    check_dataset,
    check_mask_file,
    find_phases,
    inspect_mask,
    main,
)

W, H = 20, 16  # image size (W x H), not square so that a transposed mask is caught


def save_image(path: Path, size: tuple[int, int] = (W, H), seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def save_mask(path: Path, size: tuple[int, int] = (W, H), box=(2, 2, 10, 10), value: int = 255, mode: str = "L"):
    """A rectangle ``box`` (x0, y0, x1, y1) of ``value`` on 0, saved in ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0]), dtype=np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = value
    img = Image.fromarray(arr, mode="L")
    (img if mode == "L" else img.convert(mode)).save(path)


def soft_mask(path: Path) -> None:
    """An anti-aliased mask, as a bilinear resize of a binary one gives: valid."""
    arr = np.zeros((H * 3, W * 3), dtype=np.uint8)
    arr[7:29, 8:35] = 255
    Image.fromarray(arr, mode="L").resize((W, H), Image.Resampling.BILINEAR).save(path)


def make_clean(root: Path) -> None:
    """train and test, A and B: three images each, with 2, 1 and 3 masks (one soft, one RGB but gray)."""
    for phase in ("train", "test"):
        for domain in ("A", "B"):
            img_dir, seg_dir = root / f"{phase}{domain}", root / f"{phase}{domain}_seg"
            for i, n_masks in enumerate((2, 1, 3)):
                save_image(img_dir / f"{i:04d}.png", seed=i)
                for k in range(n_masks):
                    save_mask(seg_dir / f"{i:04d}_{k}.png", box=(k, k, 8 + k, 9 + k))
            soft_mask(seg_dir / "0000_1.png")
            save_mask(seg_dir / "0002_2.png", mode="RGB")


@pytest.fixture
def clean_root(tmp_path) -> Path:
    root = tmp_path / "clean"
    make_clean(root)
    return root


def test_clean_dataset_passes_with_statistics(clean_root):
    report = check_dataset(clean_root, max_instances=20)
    assert report.ok and report.issues == [], report.format()
    assert report.phases == ["train", "test"]
    stats = report.to_dict()["stats"]["trainA"]
    assert stats["images"] == 3 and stats["masks"] == 6 and stats["masks_read"] == 6
    assert (stats["instances_min"], stats["instances_median"], stats["instances_max"]) == (1, 2, 3)
    assert stats["soft_masks"] == 1 and stats["size_min"] == [W, H]
    assert stats["histogram"]["2"] == 1 and stats["histogram"]["3"] == 1
    assert main(["--dataroot", str(clean_root), "--quiet", "--strict"]) == 0


def plant_problems(root: Path) -> dict[str, str]:
    """Every kind of problem in trainA / trainA_seg; returns ``{kind: file name at fault}``."""
    make_clean(root)
    img, seg = root / "trainA", root / "trainA_seg"
    save_image(img / "nomask.png")
    save_mask(seg / "ghost_0.png")  # no image "ghost"
    (img / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    save_image(img / "badmask.png")
    (seg / "badmask_0.png").write_bytes(b"garbage")
    save_image(img / "wrongsize.png")
    save_mask(seg / "wrongsize_0.png", size=(H, W))  # transposed
    save_image(img / "color.png")
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[2:9, 2:9] = (200, 30, 30)
    Image.fromarray(rgb).save(seg / "color_0.png")
    save_image(img / "empty.png")
    save_mask(seg / "empty_0.png", value=100)  # nothing above the midpoint
    save_image(img / "many.png")
    for k in range(5):
        save_mask(seg / f"many_{k}.png")
    save_image(img / "gap.png")
    save_mask(seg / "gap_0.png")
    save_mask(seg / "gap_2.png")
    save_mask(seg / "README.png")  # no _<k> suffix
    save_image(img / "dup.png")
    save_mask(seg / "dup_0.png")
    save_mask(seg / "dup_0.jpg")
    (img / "notes.txt").write_text("not an image")
    return {
        "no_masks": "nomask.png",
        "orphan_mask": "ghost_*",
        "unreadable": "broken.png",
        "size_mismatch": "wrongsize_0.png",
        "color_mask": "color_0.png",
        "empty_mask": "empty_0.png",
        "too_many_masks": "many.png",
        "index_gap": "gap.png",
        "bad_mask_name": "README.png",
        "duplicate": "dup_0.png",
        "not_an_image": "notes.txt",
    }


def test_every_planted_problem_is_found_by_file(tmp_path):
    root = tmp_path / "broken"
    planted = plant_problems(root)
    report = check_dataset(root, phases=["train"], max_instances=4)
    found = {(i.kind, Path(i.path).name) for i in report.issues}
    for kind, name in planted.items():
        assert (kind, name) in found, f"{kind} on {name} not reported:\n{report.format()}"
    assert ("unreadable", "badmask_0.png") in found
    # nothing else: the clean part of the fixture (soft masks, gray RGB masks) stays clean
    flagged = {Path(i.path).name for i in report.issues}
    assert not flagged & {"0000_1.png", "0002_2.png", "0000.png", "0001.png"}
    errors = ("unreadable", "size_mismatch", "color_mask", "too_many_masks")
    assert {i.severity for i in report.issues if i.kind in errors} == {ERROR}
    assert {i.severity for i in report.issues if i.kind not in errors} == {WARNING}
    assert not report.ok and report.exit_status() == 1
    lenient = check_dataset(root, phases=["train"], max_instances=4, ignore_extra_masks=True)
    assert {i.severity for i in lenient.issues if i.kind == "too_many_masks"} == {WARNING}

    text = report.format(max_listed=50)
    assert "FAILED" in text and "wrongsize_0.png" in text and "mask is 16x20, its image is 20x16" in text


def test_warnings_alone_exit_zero_unless_strict(tmp_path, capsys):
    root = tmp_path / "warn"
    make_clean(root)
    save_image(root / "trainA" / "nomask.png")
    save_mask(root / "trainB_seg" / "0000_0.png", value=60)  # empty, replaces a good mask
    assert main(["--dataroot", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "OK with 2 warning(s)" in out and "nomask.png" in out and "no_masks (1)" in out
    assert main(["--dataroot", str(root), "--quiet", "--strict"]) == 1


@pytest.mark.parametrize(
    "damage, kind",
    [
        (lambda r: __import__("shutil").rmtree(r / "trainB"), "missing_folder"),
        (lambda r: [p.unlink() for p in (r / "testB").iterdir()], "no_images"),
        (lambda r: (r / "testA" / "0000.png").write_bytes(b""), "unreadable"),
    ],
    ids=["no_trainB", "empty_testB", "zero_byte_image"],
)
def test_layout_errors(clean_root, damage, kind):
    damage(clean_root)
    report = check_dataset(clean_root)
    assert kind in report.kinds() and not report.ok, report.format()


def test_missing_mask_folder_is_a_warning_as_in_the_loader(clean_root):
    __import__("shutil").rmtree(clean_root / "trainA_seg")
    report = check_dataset(clean_root)
    assert report.ok and [i.kind for i in report.warnings] == ["missing_mask_folder"], report.format()


def test_missing_dataroot_and_phase(tmp_path, clean_root):
    assert not check_dataset(tmp_path / "nowhere").ok
    assert not check_dataset(tmp_path).ok  # exists, but holds no {phase}A folder
    report = check_dataset(clean_root, phases=["val"])
    assert [i.kind for i in report.errors] == ["missing_folder", "missing_folder"]
    assert find_phases(clean_root) == ["train", "test"]
    (clean_root / "sampleA").mkdir()
    (clean_root / "DATA").mkdir()
    assert find_phases(clean_root) == ["train", "test", "sample"]


def test_inspect_mask_rules():
    gray = Image.fromarray(np.array([[0, 255], [0, 0]], dtype=np.uint8))
    assert inspect_mask(gray) == ([], False)
    soft = Image.fromarray(np.array([[0, 200], [90, 0]], dtype=np.uint8))
    assert inspect_mask(soft) == ([], True)
    faint = Image.fromarray(np.array([[0, 127], [90, 0]], dtype=np.uint8))
    assert [k for k, _ in inspect_mask(faint)[0]] == ["empty_mask"]
    color = Image.fromarray(np.array([[[0, 0, 0], [255, 0, 0]]], dtype=np.uint8))
    assert "color_mask" in [k for k, _ in inspect_mask(color)[0]]
    gray_rgb = Image.fromarray(np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8))
    assert inspect_mask(gray_rgb) == ([], False)
    assert inspect_mask(Image.new("1", (3, 3), 1)) == ([], False)
    # 16-bit masks are scaled as the loader scales them: 0/65535 is a full mask, 0/255 stored in 16 bits too
    for top in (65535, 255):
        wide = Image.fromarray(np.array([[0, top], [0, 0]], dtype=np.uint16))
        assert inspect_mask(wide) == ([], False)
    faint16 = Image.fromarray(np.array([[0, 20000], [0, 0]], dtype=np.uint16))
    assert [k for k, _ in inspect_mask(faint16)[0]] == ["empty_mask"]


def test_check_mask_file_for_the_loader(tmp_path):
    path = tmp_path / "a_0.png"
    save_mask(path)
    issues, soft = check_mask_file(path, (W, H))
    assert issues == [] and not soft
    issues, _ = check_mask_file(path, (W + 1, H))
    assert [i.kind for i in issues] == ["size_mismatch"] and str(path) in str(issues[0])
    assert set(KINDS.values()) == {ERROR, WARNING}


@pytest.mark.slow  # the subprocess imports torch through data/__init__.py
def test_json_report_and_cli_module(clean_root, tmp_path):
    save_image(clean_root / "testB" / "lonely.png")
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "data.check", "--dataroot", str(clean_root), "--phase", "test", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["ok"] and data["phases"] == ["test"] and data["counts"] == {"no_masks": 1}
    assert "testB: 4 images" in proc.stdout


def test_toy_dataset_is_clean(toy_root):
    report = check_dataset(toy_root)
    assert report.ok, report.format()

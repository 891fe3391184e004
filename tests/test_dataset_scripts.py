"""The dataset scripts in datasets/ on tiny fixtures in each source format (COCO JSON, CCP .mat, MHP PNG).

Each generator runs as a subprocess, exactly as a user runs it; the produced layout, mask values, instance counts
and summary are checked, and so is that one corrupt source file is reported and skipped. No network is used: the
COCO download is tested against a local HTTP server.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import io
import json
import math
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from data.check import check_dataset

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"


def load_script(name: str) -> ModuleType:
    """Import ``datasets/<name>.py`` by path (``datasets`` is not a package)."""
    spec = importlib.util.spec_from_file_location(name, DATASETS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *args: str | Path) -> subprocess.CompletedProcess:
    """Run ``python datasets/<name>.py args...`` and return the finished process (stdout and stderr as text)."""
    cmd = [sys.executable, str(DATASETS / f"{name}.py"), *map(str, args), "--quiet"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)


def save_jpeg(path: Path, width: int, height: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(30, 220, (height, width, 3), dtype=np.uint8)).save(path, quality=90)


def write_corrupt(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not really an image")


def read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "L", f"{path} is {img.mode}"
        return np.asarray(img)


def summary_of(save_root: Path) -> dict:
    return json.loads((save_root / "prep_summary.json").read_text())


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ---------------------------------------------------------------------------------------------------------------
# COCO

RLE_STRING = "73305NL0"  # pycocotools' encoding of RLE_MASK
RLE_MASK = np.array(
    [[0, 0, 0, 0, 1], [0, 1, 1, 0, 0], [0, 1, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=bool
)


def box_polygon(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE (column-major run lengths, starting with a run of zeros)."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def rle_string(counts: list[int]) -> str:
    """COCO's compressed RLE string of run lengths (the inverse of the decoder under test, as pycocotools writes it)."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr((c | 0x20 if more else c) + 48))
    return "".join(out)


def make_coco(root: Path) -> None:
    """Two splits. train: sheep images 1 (2 polygons + a crowd RLE + a person), 3 (sheep outside the crop),
    4 (corrupt JPEG); giraffe images 2 (compressed RLE + polygon) and 5 (crowd only). val: one of each."""
    cats = [{"id": 1, "name": "person"}, {"id": 20, "name": "sheep"}, {"id": 25, "name": "giraffe"}]
    crowd = np.zeros((48, 64), dtype=bool)
    crowd[30:46, 40:62] = True
    big = np.zeros((60, 40), dtype=bool)
    big[10:50, 5:35] = True
    from_string = {"size": [60, 40], "counts": rle_string(uncompressed_rle(big)["counts"])}

    train = {
        "categories": cats,
        "images": [
            {"id": 1, "file_name": "000000000001.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "000000000002.jpg", "width": 40, "height": 60},
            {"id": 3, "file_name": "000000000003.jpg", "width": 96, "height": 32},
            {"id": 4, "file_name": "000000000004.jpg", "width": 64, "height": 48},
            {"id": 5, "file_name": "000000000005.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 20, "iscrowd": 0, "segmentation": [box_polygon(4, 4, 30, 40)]},
            {
                "id": 11,
                "image_id": 1,
                "category_id": 20,
                "iscrowd": 0,
                "segmentation": [box_polygon(34, 6, 44, 20), box_polygon(46, 6, 56, 20)],
            },
            {"id": 12, "image_id": 1, "category_id": 20, "iscrowd": 1, "segmentation": uncompressed_rle(crowd)},
            {"id": 13, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [box_polygon(0, 0, 10, 10)]},
            {"id": 20, "image_id": 2, "category_id": 25, "iscrowd": 0, "segmentation": from_string},
            {"id": 21, "image_id": 2, "category_id": 25, "iscrowd": 0, "segmentation": [box_polygon(2, 2, 12, 12)]},
            {"id": 30, "image_id": 3, "category_id": 20, "iscrowd": 0, "segmentation": [box_polygon(2, 2, 12, 30)]},
            {"id": 40, "image_id": 4, "category_id": 20, "iscrowd": 0, "segmentation": [box_polygon(4, 4, 30, 40)]},
            {"id": 50, "image_id": 5, "category_id": 25, "iscrowd": 1, "segmentation": uncompressed_rle(crowd)},
        ],
    }
    val = {
        "categories": cats,
        "images": [
            {"id": 7, "file_name": "000000000007.jpg", "width": 50, "height": 50},
            {"id": 8, "file_name": "000000000008.jpg", "width": 50, "height": 50},
        ],
        "annotations": [
            {"id": 70, "image_id": 7, "category_id": 20, "iscrowd": 0, "segmentation": [box_polygon(5, 5, 40, 40)]},
            {"id": 80, "image_id": 8, "category_id": 25, "iscrowd": 0, "segmentation": [box_polygon(5, 5, 40, 40)]},
        ],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(train))
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(val))
    for split, data in (("train", train), ("val", val)):
        for i, img in enumerate(data["images"]):
            save_jpeg(root / f"{split}2017" / img["file_name"], img["width"], img["height"], seed=i)
    write_corrupt(root / "train2017" / "000000000004.jpg")


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("coco") / "COCO"
    make_coco(root)
    return root


def test_coco_generator_layout_counts_and_summary(coco_root, tmp_path):
    save = tmp_path / "shp2gir"
    proc = run_script("generate_coco_dataset", "--data_root", coco_root, "--save_root", save, "--image_size", "32")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert listing(save / "trainA") == ["000000000001.png"]  # 3: instance cropped away, 4: corrupt
    assert listing(save / "trainA_seg") == [f"000000000001_{k}.png" for k in range(3)]  # 2 polygons + crowd kept
    assert listing(save / "trainB") == ["000000000002.png", "000000000005.png"]  # 5: crowd only, kept by default
    assert listing(save / "trainB_seg") == ["000000000002_0.png", "000000000002_1.png", "000000000005_0.png"]
    assert listing(save / "testA") == ["000000000007.png"] and listing(save / "testB") == ["000000000008.png"]

    for path in (save / "trainA").iterdir():
        with Image.open(path) as img:
            assert img.size == (32, 32) and img.mode == "RGB"
    for path in (save / "trainA_seg").iterdir():
        mask = read_mask(path)
        assert mask.shape == (32, 32) and mask.max() == 255 and mask.min() == 0
    # the first sheep (box x 4..30, y 4..40 of a 64x48 image) after resize to 42x32 and a center crop at x = 5
    first = read_mask(save / "trainA_seg" / "000000000001_0.png")
    assert first[12, 10] == 255 and first[12, 25] == 0

    summary = summary_of(save)
    assert summary["splits"]["trainA"]["images"] == 1 and summary["splits"]["trainA"]["instances"] == 3
    assert summary["splits"]["trainB"]["instances"] == 3
    reasons = {(s["source"].rsplit("/", 1)[-1], s["reason"]) for s in summary["skipped"]}
    assert ("000000000003.jpg", "no_instance") in reasons
    assert ("000000000004.jpg", "error") in reasons
    assert "000000000004.jpg" in proc.stdout and "could not be used" in proc.stdout
    assert "trainA" in proc.stdout and "sheep" in proc.stdout

    report = check_dataset(save, max_instances=20)
    assert report.ok, report.format()


def test_coco_crowd_skip_min_area_and_val_phase(coco_root, tmp_path):
    save = tmp_path / "out"
    args = ["--data_root", coco_root, "--save_root", save, "--image_size", "32", "--crowd", "skip"]
    proc = run_script("generate_coco_dataset", *args, "--val_phase", "val", "--mask_backend", "builtin")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(listing(save / "trainA_seg")) == 2  # the crowd annotation is dropped
    assert listing(save / "trainB") == ["000000000002.png"]  # image 5 had only a crowd annotation
    assert listing(save / "valA") == ["000000000007.png"] and not (save / "testA").exists()

    save2 = tmp_path / "big_only"
    proc = run_script(
        "generate_coco_dataset",
        "--data_root",
        coco_root,
        "--save_root",
        save2,
        *"--image_size 32 --min_area 100 --splits train".split(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # image 2 (40x60 -> 32x48, crop 32x32): the 30x40 RLE box stays large, the 10x10 polygon falls under 100 pixels
    assert listing(save2 / "trainB_seg") == ["000000000002_0.png", "000000000005_0.png"]


def test_coco_resume_and_option_guard(coco_root, tmp_path):
    save = tmp_path / "out"
    base = ["--data_root", coco_root, "--save_root", save, "--image_size", "32", "--splits", "train"]
    assert run_script("generate_coco_dataset", *base).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in save.rglob("*.png")}

    again = run_script("generate_coco_dataset", *base)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p: p.stat().st_mtime_ns for p in save.rglob("*.png")} == before  # nothing rewritten
    assert summary_of(save)["splits"]["trainA"]["resumed"] == 1 and "already there" in again.stdout

    clash = run_script("generate_coco_dataset", *base, "--crowd", "skip")
    assert clash.returncode != 0 and "--overwrite" in clash.stderr and "crowd" in clash.stderr

    redo = run_script("generate_coco_dataset", *base, "--crowd", "skip", "--overwrite")
    assert redo.returncode == 0, redo.stdout + redo.stderr
    assert len(listing(save / "trainA_seg")) == 2


def test_coco_unknown_category_names_choices(coco_root, tmp_path):
    proc = run_script("generate_coco_dataset", "--data_root", coco_root, "--save_root", tmp_path / "o", "--cat1", "cow")
    assert proc.returncode != 0 and "cow" in proc.stderr and "giraffe" in proc.stderr


def test_coco_builtin_decoder():
    gen = load_script("generate_coco_dataset")
    assert rle_string(uncompressed_rle(RLE_MASK)["counts"]) == RLE_STRING
    assert (gen.decode_builtin({"size": [6, 5], "counts": RLE_STRING}, 6, 5) == RLE_MASK).all()
    assert (gen.decode_builtin({"size": [6, 5], "counts": RLE_STRING.encode()}, 6, 5) == RLE_MASK).all()
    assert (gen.decode_builtin(uncompressed_rle(RLE_MASK), 6, 5) == RLE_MASK).all()
    poly = gen.decode_builtin([box_polygon(2, 3, 10, 8)], 12, 14)
    assert poly.shape == (12, 14) and poly[5, 6] and not poly[0, 0] and not poly[11, 13]
    with pytest.raises(ValueError):
        gen.decode_builtin({"size": [6, 5], "counts": [3, 4]}, 6, 5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' own numpy 2 warning
def test_coco_builtin_decoder_matches_pycocotools():
    pytest.importorskip("pycocotools")
    gen = load_script("generate_coco_dataset")
    rng = np.random.default_rng(0)
    for _ in range(5):
        mask = rng.random((23, 31)) > 0.5
        rle = uncompressed_rle(mask)
        assert (gen.decode_pycocotools(rle, 23, 31) == mask).all()
        assert (gen.decode_builtin(rle, 23, 31) == mask).all()
    # a blob polygon: PIL and pycocotools rasterize edges differently, but agree inside
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    poly = np.stack([30 + 20 * np.cos(angles), 25 + 15 * np.sin(angles)], 1).reshape(-1).tolist()
    ours, ref = gen.decode_builtin([poly], 50, 60), gen.decode_pycocotools([poly], 50, 60)
    assert (ours & ref).sum() / (ours | ref).sum() > 0.9


# ---------------------------------------------------------------------------------------------------------------
# CCP


def make_ccp(root: Path, sio) -> dict[str, set[str]]:
    """Twelve pixel-annotated photos 30x40 (WxH): which contain pants (3) and skirt (2); 0012.mat is corrupt."""
    names = ["null", "jeans", "skirt", "pants"]
    cell = np.empty((1, len(names)), dtype=object)
    for i, n in enumerate(names):
        cell[0, i] = np.array([n])
    root.mkdir(parents=True)
    sio.savemat(str(root / "label_list.mat"), {"label_list": cell})
    pix = root / "annotations" / "pixel-level"
    pix.mkdir(parents=True)
    (root / "annotations" / "image-level").mkdir()
    sio.savemat(str(root / "annotations" / "image-level" / "0100.mat"), {"tags": np.array([[3]])})
    has: dict[str, set[str]] = {"pants": set(), "skirt": set()}
    for i in range(1, 13):
        ident = f"{i:04d}"
        labels = np.zeros((40, 30), dtype=np.uint8)
        if i % 2:
            labels[20:38, 5:25] = 3
            has["pants"].add(ident)
        if i % 3 == 0:
            labels[5:15, 8:20] = 2
            has["skirt"].add(ident)
        sio.savemat(str(pix / f"{ident}.mat"), {"groundtruth": labels})
        save_jpeg(root / "photos" / f"{ident}.jpg", 30, 40, seed=i)
    save_jpeg(root / "photos" / "0100.jpg", 30, 40)
    (pix / "0012.mat").write_bytes(b"MATLAB 5.0 MAT-file, but truncated")
    has["skirt"].discard("0012")
    return has


def test_ccp_generator_splits_masks_and_corrupt_file(tmp_path):
    sio = pytest.importorskip("scipy.io")
    root = tmp_path / "clothing-co-parsing"
    has = make_ccp(root, sio)
    save = tmp_path / "pants2skirt_ccp"
    args = ["--data_root", root, "--save_root", save, "--cat1", "pants", "--cat2", "skirt", "--test_fraction", "0.25"]
    proc = run_script("generate_ccp_dataset", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    train_ids = (save / "train_list.txt").read_text().split()
    test_ids = (save / "test_list.txt").read_text().split()
    assert len(test_ids) == 3 and not set(train_ids) & set(test_ids)
    assert sorted(train_ids + test_ids) == [f"{i:04d}" for i in range(1, 13)]  # image-level 0100 is not used

    for phase, ids in (("train", train_ids), ("test", test_ids)):
        for domain, cat, value in (("A", "pants", 3), ("B", "skirt", 2)):
            expected = sorted(i for i in ids if i in has[cat])
            assert listing(save / f"{phase}{domain}") == [f"{i}.png" for i in expected]
            assert listing(save / f"{phase}{domain}_seg") == [f"{i}_0.png" for i in expected]  # every image has a mask
            for i in expected:
                mask = read_mask(save / f"{phase}{domain}_seg" / f"{i}_0.png")
                assert mask.shape == (40, 30) and set(np.unique(mask)) == {0, 255}
                assert mask[25, 10] == (255 if value == 3 else 0) and mask[10, 10] == (255 if value == 2 else 0)

    summary = summary_of(save)
    errors = [s for s in summary["skipped"] if s["error"]]
    assert {Path(s["source"]).name for s in errors} == {"0012.mat"}
    assert "0012.mat" in proc.stdout
    assert check_dataset(save).ok

    again = run_script("generate_ccp_dataset", *args)  # same split, nothing to redo
    assert again.returncode == 0 and (save / "test_list.txt").read_text().split() == test_ids


def test_ccp_unknown_label_and_missing_scipy_message(tmp_path):
    sio = pytest.importorskip("scipy.io")
    root = tmp_path / "ccp"
    make_ccp(root, sio)
    proc = run_script("generate_ccp_dataset", "--data_root", root, "--save_root", tmp_path / "o", "--cat1", "socks")
    assert proc.returncode != 0 and "socks" in proc.stderr and "pants" in proc.stderr

    common = load_script("prep_common")
    with pytest.raises(common.MissingDependency, match="pip install not-a-real-package"):
        common.require("not_a_real_module_xyz", "not-a-real-package", "Testing")


# ---------------------------------------------------------------------------------------------------------------
# MHP


def save_labels(path: Path, labels: np.ndarray, rgb: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(labels.astype(np.uint8), mode="L")
    (img.convert("RGB") if rgb else img).save(path)


def person(height: int, width: int, boxes: dict[int, tuple[int, int, int, int]]) -> np.ndarray:
    labels = np.zeros((height, width), dtype=np.uint8)
    for value, (y0, y1, x0, x1) in boxes.items():
        labels[y0:y1, x0:x1] = value
    return labels


def make_mhp(root: Path) -> None:
    """train: 1 (two people: pants; pants and skirt), 2 (landscape, pants), 3 (hair only), 4 (corrupt photo),
    5 (narrow portrait, skirt), 6 (corrupt annotation); test: 7 (pants and skirt)."""
    pants, skirt, hair = 6, 5, 2
    ann = root / "annotations"
    sizes = {1: (60, 90), 2: (90, 60), 3: (60, 90), 4: (60, 90), 5: (40, 90), 6: (60, 90), 7: (60, 90)}
    for ident, (w, h) in sizes.items():
        save_jpeg(root / "images" / f"{ident}.jpg", w, h, seed=ident)
    save_labels(ann / "1_02_01.png", person(90, 60, {pants: (50, 85, 10, 25)}))
    save_labels(ann / "1_02_02.png", person(90, 60, {pants: (50, 85, 32, 50), skirt: (40, 50, 32, 50)}), rgb=True)
    save_labels(ann / "2_01_01.png", person(60, 90, {pants: (30, 55, 30, 60)}))
    save_labels(ann / "3_01_01.png", person(90, 60, {hair: (0, 10, 20, 40)}))
    save_labels(ann / "4_01_01.png", person(90, 60, {pants: (50, 85, 10, 25)}))
    save_labels(ann / "5_01_01.png", person(90, 40, {skirt: (40, 60, 5, 35)}))
    write_corrupt(ann / "6_01_01.png")
    save_labels(ann / "7_02_01.png", person(90, 60, {pants: (50, 85, 10, 25)}))
    save_labels(ann / "7_02_02.png", person(90, 60, {skirt: (40, 60, 32, 50)}))
    write_corrupt(root / "images" / "4.jpg")
    (root / "train_list.txt").write_text("".join(f"{i}.jpg\n" for i in range(1, 7)))
    (root / "test_list.txt").write_text("7.jpg\n")


@pytest.fixture(scope="module")
def mhp_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mhp") / "LV-MHP-v1"
    make_mhp(root)
    return root


def test_mhp_generator_layout_landscape_skip_and_summary(mhp_root, tmp_path):
    save = tmp_path / "pants2skirt_mhp"
    args = ["--data_root", mhp_root, "--save_root", save, "--size_h", "45", "--size_w", "30"]
    proc = run_script("generate_mhp_dataset", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert listing(save / "trainA") == ["1.png"]
    assert listing(save / "trainA_seg") == ["1_0.png", "1_1.png"]  # one mask per person wearing pants
    assert listing(save / "trainB") == ["1.png", "5.png"] and listing(save / "trainB_seg") == ["1_0.png", "5_0.png"]
    assert listing(save / "testA") == ["7.png"] and listing(save / "testB") == ["7.png"]
    for path in [*(save / "trainB").iterdir(), *(save / "trainB_seg").iterdir()]:
        with Image.open(path) as img:
            assert img.size == (30, 45)
    # person 1 wears pants on the left half, person 2 on the right half
    left, right = read_mask(save / "trainA_seg" / "1_0.png"), read_mask(save / "trainA_seg" / "1_1.png")
    assert left[33, 8] == 255 and left[33, 22] == 0 and right[33, 22] == 255 and right[33, 8] == 0
    # image 5 (40x90) is resized to 20x45 and padded to 30 wide with black bands, as torchvision's CenterCrop did
    padded = np.asarray(Image.open(save / "trainB" / "5.png"))
    assert padded[:, :5].max() == 0 and padded[:, 25:].max() == 0 and padded[:, 5:25].max() > 0

    summary = summary_of(save)
    skipped = {(Path(s["source"]).name, s["phase"] + s["domain"]): s for s in summary["skipped"]}
    assert skipped[("2.jpg", "trainA")]["reason"] == "landscape"
    assert skipped[("3.jpg", "trainA")]["reason"] == "no_instance"
    assert skipped[("4.jpg", "trainA")]["error"] and skipped[("6.jpg", "trainA")]["error"]
    assert "6_01_01.png" in skipped[("6.jpg", "trainA")]["detail"]
    assert summary["splits"]["trainA"]["instances"] == 2 and summary["splits"]["trainB"]["instances"] == 2
    assert "landscape 2" in proc.stdout and "4.jpg" in proc.stdout  # image 2 skipped in A and B, 4 named

    report = check_dataset(save, max_instances=20)
    assert report.ok and not report.warnings, report.format()


def test_mhp_keeps_landscape_when_asked(mhp_root, tmp_path):
    save = tmp_path / "out"
    args = ["--data_root", mhp_root, "--save_root", save, "--size_h", "45", "--size_w", "30", "--no_skip_horizontal"]
    proc = run_script("generate_mhp_dataset", *args, "--phases", "train")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert listing(save / "trainA") == ["1.png", "2.png"] and not (save / "testA").exists()


def test_generator_exit_status_when_a_split_is_empty(mhp_root, tmp_path):
    save = tmp_path / "out"
    proc = run_script("generate_mhp_dataset", "--data_root", mhp_root, "--save_root", save, "--cat2", "scarf")
    assert proc.returncode == 1 and "trainB has no images" in proc.stdout


# ---------------------------------------------------------------------------------------------------------------
# COCO download (local server with range requests)


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from ``directory`` and honours ``Range: bytes=N-``; records the ranges asked for."""

    ranges: list[str | None] = []

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        path = Path(self.directory) / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        if start >= len(data):
            self.send_error(416)
            return
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def zip_server(tmp_path):
    served = tmp_path / "served"
    (served / "zips").mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"val2017/{i:012d}.jpg", bytes(range(256)) * 50)
    payload = buf.getvalue()
    (served / "zips" / "val2017.zip").write_bytes(payload)
    RangeHandler.ranges = []
    handler = lambda *a, **k: RangeHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", payload
    server.shutdown()
    server.server_close()


def test_download_resumes_checks_md5_and_unpacks(zip_server, tmp_path):
    url, payload = zip_server
    dl = load_script("download_coco")
    dl.ARCHIVES["val"] = dl.Archive("zips/val2017.zip", hashlib.md5(payload).hexdigest(), "val2017")
    root = tmp_path / "COCO"
    root.mkdir()
    (root / "val2017.zip.part").write_bytes(payload[:1000])  # an interrupted earlier run

    assert dl.main(["--root", str(root), "--items", "val", "--base_url", url, "--quiet"]) == 0
    assert RangeHandler.ranges == ["bytes=1000-"]
    assert len(listing(root / "val2017")) == 3 and not (root / "val2017.zip").exists()

    assert dl.main(["--root", str(root), "--items", "val", "--base_url", url, "--quiet"]) == 0  # already done
    assert RangeHandler.ranges == ["bytes=1000-"]


def test_download_rejects_bad_checksum(zip_server, tmp_path):
    url, _ = zip_server
    dl = load_script("download_coco")
    dl.ARCHIVES["val"] = dl.Archive("zips/val2017.zip", "0" * 32, "val2017")
    root = tmp_path / "COCO"
    with pytest.raises(SystemExit, match="MD5"):
        dl.main(["--root", str(root), "--items", "val", "--base_url", url, "--quiet"])
    assert not (root / "val2017.zip").exists() and not (root / "val2017").exists()


# ---------------------------------------------------------------------------------------------------------------
# Geometry: the original resized and cropped with torchvision; ours uses PIL alone and must give the same pixels


@pytest.mark.parametrize("size", [(64, 48), (40, 60), (97, 33), (427, 640)])
def test_coco_resize_crop_matches_torchvision(size):
    transforms = pytest.importorskip("torchvision.transforms")
    common = load_script("prep_common")
    w, h = size
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))
    ref = transforms.Compose([transforms.Resize(32), transforms.CenterCrop(32)])(img)
    ours = common.resize_and_center_crop(img, common.shorter_side_resize_hw(w, h, 32), (32, 32), Image.BILINEAR)
    assert np.array_equal(np.asarray(ref), np.asarray(ours))


@pytest.mark.parametrize("size", [(60, 90), (40, 90), (41, 90), (301, 451)])
def test_mhp_resize_crop_matches_torchvision(size):
    transforms = pytest.importorskip("torchvision.transforms")
    common = load_script("prep_common")
    w, h = size
    img = Image.fromarray(np.random.default_rng(0).integers(1, 255, (h, w, 3), dtype=np.uint8))
    ref = transforms.Compose([transforms.Resize([45, math.ceil(w / h * 45)]), transforms.CenterCrop([45, 30])])(img)
    ours = common.resize_and_center_crop(img, common.height_resize_hw(w, h, 45), (45, 30), Image.BILINEAR)
    assert np.array_equal(np.asarray(ref), np.asarray(ours))  # black side bands included

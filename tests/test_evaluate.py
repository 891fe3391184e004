"""evaluate.py on hand-made results folders: exact pixel and mask numbers, the domain classifier, FID/KID against
torchmetrics, and the path without Inception weights."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from datasets.make_toy_dataset import make_sample
from evaluate import evaluate_results, main
from metrics.classifier import to_unit, train_classifier
from metrics.inception import fid, how_to_get_weights, kid
from metrics.pixels import MaskChange, box_geometry
from metrics.results import ResultsFolder, save_instance_masks

H, W = 24, 32


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def _rect(top, left, h, w):
    m = np.zeros((H, W), dtype=bool)
    m[top : top + h, left : left + w] = True
    return m


def make_results(root, samples, instance_masks=True):
    """``samples``: stem -> dict of visuals (``[H, W, 3]`` uint8 arrays) and masks (key -> list of bool arrays).
    Writes images/<stem>_<visual>.png and masks/<stem>_<key>_<k>.png as test.py does."""
    for stem, sample in samples.items():
        for name, image in sample["images"].items():
            _save(root / "images" / f"{stem}_{name}.png", image)
        for key, masks in sample.get("masks", {}).items():
            merged = np.zeros((H, W), dtype=bool)
            for k, m in enumerate(masks):
                merged |= m
                if instance_masks:
                    _save(root / "masks" / f"{stem}_{key}_{k}.png", m.astype(np.uint8) * 255)
            _save(root / "images" / f"{stem}_{key}_seg.png", np.repeat(merged[..., None] * 255, 3, axis=2))
    (root / "index.html").write_text("<html><body><h1>results</h1><h3>x</h3></body></html>")
    return root


def _background(seed):
    rng = np.random.default_rng(seed)
    return rng.integers(20, 200, (H, W, 3)).astype(np.uint8)  # room for +40 without clipping


def shifted_sample(seed, shift_bg, shift_fg, masks_in, masks_out):
    a, b = _background(seed), _background(seed + 100)
    inside = np.any(masks_in, axis=0)[..., None]
    return {
        "images": {
            "real_A_img": a,
            "fake_B_img": a + np.where(inside, shift_fg, shift_bg),
            "real_B_img": b,
            "fake_A_img": b.copy(),
        },
        "masks": {"real_A": masks_in, "fake_B": masks_out, "real_B": masks_in, "fake_A": masks_in},
    }


def test_copy_scores_zero_and_inf(tmp_path):
    masks = [_rect(2, 3, 8, 8), _rect(12, 18, 6, 10)]
    samples = {f"im{i}": shifted_sample(i, 0, 0, masks, masks) for i in range(3)}
    root = make_results(tmp_path / "res", samples)
    out = evaluate_results(root, checkpoints_dir=tmp_path / "ck", name="run")
    for d in ("AtoB", "BtoA"):
        r = out[d]
        assert r["bg_l1"] == 0 and r["bg_psnr"] == math.inf
        assert r["fg_l1"] == 0 and r["fg_psnr"] == math.inf
        assert r["mask_iou"] == 1 and r["area_change"] == 0 and r["aspect_change"] == 0 and r["extent_change"] == 0
        assert r["num_images"] == 3 and r["num_instances"] == 6
        assert r["domain_score"] is None and r["fid"] is None  # no dataroot, no Inception weights here
    record = json.loads((root / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert record["AtoB"]["bg_psnr"] == math.inf  # written as 1e999, strict JSON


def test_known_shift_gives_known_l1_and_psnr(tmp_path):
    masks_in = [_rect(2, 3, 8, 8)]
    masks_out = [_rect(2, 3, 8, 12)]  # grown: the extra 8x4 pixels are neither background nor input instance
    samples = {f"im{i}": shifted_sample(i, 10, 40, masks_in, masks_out) for i in range(2)}
    root = make_results(tmp_path / "res", samples)
    r = evaluate_results(root, checkpoints_dir=tmp_path / "ck", name="run")["AtoB"]
    assert r["bg_l1"] == pytest.approx(10 / 255, rel=1e-6)
    assert r["bg_psnr"] == pytest.approx(-20 * math.log10(10 / 255), rel=1e-6)
    assert r["fg_l1"] == pytest.approx(40 / 255, rel=1e-6)
    assert r["fg_psnr"] == pytest.approx(-20 * math.log10(40 / 255), rel=1e-6)
    # IoU 64 / 96; area +32 pixels of 24x32; aspect 8/12 - 8/8; extent 1 - 1.
    assert r["mask_iou"] == pytest.approx(64 / 96)
    assert r["area_change"] == pytest.approx(32 / (H * W))
    assert r["aspect_change"] == pytest.approx(8 / 12 - 1)
    assert r["extent_change"] == pytest.approx(0)


def test_mask_geometry_and_vanished_instances():
    yy, xx = np.mgrid[0:101, 0:101]
    disc = torch.from_numpy((yy - 50) ** 2 + (xx - 50) ** 2 <= 40**2)
    area, aspect, extent = box_geometry(disc)
    assert aspect == 1 and area == int(disc.sum()) / 101**2 and extent == int(disc.sum()) / 81**2
    assert extent == pytest.approx(math.pi / 4, abs=0.03)  # a pixelated disc of radius 40 in its 81x81 box
    assert box_geometry(torch.zeros(5, 5, dtype=torch.bool)) is None
    change = MaskChange()
    m_in = torch.from_numpy(np.stack([_rect(0, 0, 4, 4), _rect(10, 10, 4, 8)]))[None]
    m_out = torch.from_numpy(np.stack([np.zeros((H, W), bool), _rect(10, 10, 4, 8)]))[None]
    change.add(m_in, m_out)
    r = change.result()
    assert r["num_instances"] == 2 and r["vanished_instances"] == 1
    assert r["mask_iou"] == pytest.approx(0.5)  # 0 for the vanished one, 1 for the other
    assert r["area_change"] == pytest.approx(-16 / (H * W) / 2)
    assert r["aspect_change"] == 0  # only the instance that is still there


def test_merged_masks_when_the_folder_has_no_instance_masks(tmp_path):
    masks = [_rect(2, 3, 8, 8)]
    samples = {"im0": shifted_sample(0, 10, 40, masks, masks)}
    root = make_results(tmp_path / "res", samples, instance_masks=False)
    r = evaluate_results(root, checkpoints_dir=tmp_path / "ck", name="run")["AtoB"]
    assert r["bg_l1"] == pytest.approx(10 / 255) and r["fg_l1"] == pytest.approx(40 / 255)
    assert r["mask_iou"] is None


def test_instance_masks_round_trip(tmp_path):
    real = -torch.ones(1, 4, H, W)
    real[0, 0, 2:10, 3:11] = 1
    real[0, 2, 12:18, 18:28] = 1
    fake = -torch.ones(1, 4, H, W)
    fake[0, 0, 2:10, 3:15] = 1  # slot 2's translation vanished: written anyway, as an empty mask
    written = save_instance_masks(tmp_path / "masks", "x", {"real_A": real, "fake_B": fake})
    assert sorted(p.name for p in written) == ["x_fake_B_0.png", "x_fake_B_2.png", "x_real_A_0.png", "x_real_A_2.png"]
    _save(tmp_path / "images" / "x_real_A_img.png", np.zeros((H, W, 3)))
    _save(tmp_path / "images" / "x_fake_B_img.png", np.zeros((H, W, 3)))
    visuals, masks = next(ResultsFolder(tmp_path).batches())
    assert torch.equal(masks["real_A"][0, [0, 2]], real[0, [0, 2]])
    assert torch.equal(masks["fake_B"][0, [0, 2]], fake[0, [0, 2]])
    assert (masks["real_A"][0, 1] == -1).all()


def _domain(seed, blue, n):
    """Noisy images, reddish (A) or bluish (B): trivially separable."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, (n, H, W, 3))
    images[..., 2 if blue else 0] += 140
    return images.astype(np.uint8)


def test_classifier_separates_trivial_domains_and_is_reused(tmp_path, one_thread):
    data = tmp_path / "data"
    for d, blue in (("A", False), ("B", True)):
        for i, im in enumerate(_domain(ord(d), blue, 24)):
            _save(data / f"train{d}" / f"{i}.png", im)
    test_a, test_b = _domain(1, False, 4), _domain(2, True, 4)
    good = {
        f"im{i}": {
            "images": {
                "real_A_img": test_a[i],
                "fake_B_img": test_b[(i + 1) % 4],
                "real_B_img": test_b[i],
                "fake_A_img": test_a[(i + 1) % 4],
            }
        }
        for i in range(4)
    }
    lazy = {
        f"im{i}": {
            "images": {
                "real_A_img": test_a[i],
                "fake_B_img": test_a[i],
                "real_B_img": test_b[i],
                "fake_A_img": test_b[i],
            }
        }
        for i in range(4)
    }
    ck = tmp_path / "ck"
    lines = []
    out = evaluate_results(
        make_results(tmp_path / "good", good), dataroot=data, checkpoints_dir=ck, name="run", log=lines.append
    )
    assert (ck / "run" / "domain_classifier.pth").is_file()
    assert any("trained on 24 + 24 images" in line for line in lines)
    for d in ("AtoB", "BtoA"):
        assert out[d]["domain_score"] == 1.0 and out[d]["classifier_acc"] == 1.0
    lines.clear()
    out = evaluate_results(
        make_results(tmp_path / "lazy", lazy), dataroot=data, checkpoints_dir=ck, name="run", log=lines.append
    )
    assert any(
        str(ck / "run" / "domain_classifier.pth") in line and "trained on" in line and "saved" not in line
        for line in lines
    )  # reused, not retrained
    for d in ("AtoB", "BtoA"):
        assert out[d]["domain_score"] == 0.0 and out[d]["classifier_acc"] == 1.0


def test_classifier_training_is_seeded(one_thread):
    a = torch.from_numpy(_domain(1, False, 8)).permute(0, 3, 1, 2)
    b = torch.from_numpy(_domain(2, True, 8)).permute(0, 3, 1, 2)
    net1, acc1 = train_classifier(a, b, epochs=2, seed=5)
    net2, acc2 = train_classifier(a, b, epochs=2, seed=5)
    assert acc1 == acc2
    assert all(torch.equal(p, q) for p, q in zip(net1.state_dict().values(), net2.state_dict().values()))


def _toy_images(domain: str, n: int, seed: int) -> torch.Tensor:
    """``[n, 3, 32, 32]`` uint8 images of toy.sh's toy data (1-2 flat shapes on gradients), none empty."""
    rng = np.random.default_rng(seed)
    images = []
    while len(images) < n:
        image, masks = make_sample(
            rng,
            domain,
            32,
            p_empty=0.0,
            radius=(0.2, 0.3),
            aspect=1.7,
            backgrounds=("gradient",),
            pixel_noise=0.0,
            max_instances=2,
            outline=False,
        )
        if masks:
            images.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
    return torch.stack(images)


def test_classifier_tells_the_shapes_apart_when_blurred(one_thread):
    """A translation's instances are softer than the real ones; the classifier must judge their shape, not their
    sharpness. Trained without blur (BLUR_P = 0), the same classifier called 80% of these discs B at σ = 1."""
    a, b = _toy_images("A", 150, seed=1), _toy_images("B", 150, seed=2)
    net, acc = train_classifier(a, b, seed=0)
    assert acc > 0.95
    test_a, test_b = _toy_images("A", 40, seed=3), _toy_images("B", 40, seed=4)
    for images, is_b in ((test_a, False), (test_b, True)):
        assert (net.predict_b(to_unit(images)) == is_b).float().mean() >= 0.95
        for sigma, floor in ((1.0, 0.9), (1.5, 0.85)):
            blurred = TF.gaussian_blur(to_unit(images), [7, 7], [sigma, sigma])
            assert (net.predict_b(blurred) == is_b).float().mean() >= floor, (is_b, sigma)


class _Features(torch.nn.Module):
    """Hands the "images" (already features) to torchmetrics unchanged."""

    def __init__(self, dim):
        super().__init__()
        self.num_features = dim

    def forward(self, x):
        return x


@pytest.mark.parametrize("n_real, n_fake, dim", [(40, 30, 16), (12, 10, 32)])  # more, then fewer images than dims
def test_fid_kid_match_torchmetrics(n_real, n_fake, dim):
    fid_module = pytest.importorskip("torchmetrics.image.fid")
    kid_module = pytest.importorskip("torchmetrics.image.kid")
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(n_real, dim, generator=gen)
    fake = torch.randn(n_fake, dim, generator=gen) * 1.3 + 0.4
    ref = fid_module.FrechetInceptionDistance(feature=_Features(dim))
    ref.update(real, real=True)
    ref.update(fake, real=False)
    assert fid(real, fake) == pytest.approx(float(ref.compute()), rel=1e-5)
    size = min(n_real, n_fake) // 2
    with pytest.warns(UserWarning):  # torchmetrics warns that it keeps the features
        ref = kid_module.KernelInceptionDistance(feature=_Features(dim), subsets=7, subset_size=size)
    ref.update(real, real=True)
    ref.update(fake, real=False)
    torch.manual_seed(3)  # torchmetrics draws its subsets from the global generator; ours from one seeded alike
    ref_mean, ref_std = (float(v) for v in ref.compute())
    mean, std = kid(real, fake, subsets=7, subset_size=size, seed=3)
    assert mean == pytest.approx(ref_mean, rel=1e-5, abs=1e-7) and std == pytest.approx(ref_std, rel=1e-5, abs=1e-7)


def test_no_inception_weights_says_how_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    masks = [_rect(2, 3, 8, 8)]
    root = make_results(tmp_path / "res", {"im0": shifted_sample(0, 10, 40, masks, masks)})
    out = main(["--results_dir", str(root), "--checkpoints_dir", str(tmp_path / "ck")])
    text = capsys.readouterr().out
    hint = [line for line in text.splitlines() if line.startswith("FID/KID skipped")]
    assert len(hint) == 1
    assert "inception_v3" in hint[0] and str(tmp_path / "hub" / "checkpoints") in hint[0]
    assert "--inception_weights" in hint[0] and hint[0].endswith(how_to_get_weights())
    assert out["AtoB"]["fid"] is None and out["AtoB"]["kid"] is None
    assert out["AtoB"]["bg_l1"] == pytest.approx(10 / 255)  # the other metrics still run
    page = (root / "index.html").read_text()
    assert page.count('<section id="metrics">') == 1 and "FID/KID skipped" in page
    main(["--results_dir", str(root), "--checkpoints_dir", str(tmp_path / "ck")])  # a second run replaces the section
    assert (root / "index.html").read_text().count('<section id="metrics">') == 1
    with pytest.raises(SystemExit, match="does not exist"):
        main(["--results_dir", str(root), "--inception_weights", str(tmp_path / "missing.pth")])


def test_not_a_results_folder(tmp_path):
    with pytest.raises(SystemExit, match="results/<name>/<phase>_<epoch>"):
        main(["--results_dir", str(tmp_path)])


class _PooledPixels(torch.nn.Module):
    """A cheap feature extractor for the evaluator's bookkeeping: per-channel means and stds of 4x4 blocks."""

    def forward(self, x):
        return torch.cat([torch.nn.functional.avg_pool2d(x, 4).flatten(1), x.std(dim=(2, 3))], dim=1).double()


def test_evaluator_feeds_fid_kid_the_target_domain_sets(tmp_path):
    from metrics.evaluator import Evaluator

    gen = torch.Generator().manual_seed(0)
    real_a, real_b = torch.rand(6, 3, 16, 16, generator=gen) * 2 - 1, torch.rand(6, 3, 16, 16, generator=gen) - 0.5
    fake_a = (real_b + 0.3).clamp(-1, 1)
    features = _PooledPixels()
    ev = Evaluator(inception=features, kid_subsets=4)
    for half in (slice(0, 3), slice(3, 6)):  # two batches
        ev.add(
            {
                "real_A_img": real_a[half],
                "fake_B_img": real_b[half],
                "real_B_img": real_b[half],
                "fake_A_img": fake_a[half],
            }
        )
    out = ev.result()
    assert out["AtoB"]["fid"] == pytest.approx(0, abs=1e-9)  # fake_B is exactly the real B set
    assert out["BtoA"]["fid"] == pytest.approx(fid(features(real_a), features(fake_a)))
    assert out["BtoA"]["kid"] == pytest.approx(kid(features(real_a), features(fake_a), subsets=4)[0])
    assert out["AtoB"]["mask_iou"] is None  # no masks: all of the image is background
    assert out["AtoB"]["bg_l1"] == pytest.approx(float((real_b - real_a).abs().mean() / 2))


@pytest.mark.slow
def test_inception_features_from_a_weights_file(tmp_path):
    """torchvision's Inception-v3 state_dict loads from a file and gives 2048 features per image; a wrong file is a
    clear error. (A randomly initialised network: the weights' values do not matter here.)"""
    from torchvision.models import inception_v3

    from metrics.inception import FEATURES, InceptionFeatures, find_weights

    torch.manual_seed(0)
    weights = tmp_path / "inception.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), weights)
    assert find_weights(weights) == weights
    out = InceptionFeatures(weights)(torch.rand(2, 3, 24, 32) * 2 - 1)
    assert out.shape == (2, FEATURES) and torch.isfinite(out).all()
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="state_dict of torchvision's inception_v3"):
        InceptionFeatures(tmp_path / "bad.pth")


def test_metrics_take_the_place_of_test_pys_placeholder(tmp_path):
    from types import SimpleNamespace

    from util.results_page import results_page, save_images

    masks = [_rect(2, 3, 8, 8)]
    sample = shifted_sample(0, 10, 40, masks, masks)
    opt = SimpleNamespace(name="run", phase="test", checkpoints_dir=str(tmp_path / "ck"), dataroot="d")
    page = results_page(tmp_path / "res", opt, "latest", "--ngf 8")
    save_images(page, {k: v.astype(np.uint8) for k, v in sample["images"].items()}, "im0.png")
    index = page.save()
    assert "python evaluate.py --results_dir" in index.read_text()
    evaluate_results(tmp_path / "res", checkpoints_dir=tmp_path / "ck", name="run")
    text = index.read_text()
    assert text.count('<section id="metrics">') == 1 and "python evaluate.py --results_dir" not in text
    assert text.index("options") < text.index('id="metrics"') < text.index("im0_real_A_img.png")

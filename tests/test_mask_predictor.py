"""The mask predictor: U-Net shapes, instances from a union mask, training on the toy data to IoU >= 0.8."""

from __future__ import annotations

import json

import pytest
import torch
from masks_helpers import disc, trained_predictor

from models.instances import InstanceTracker, connected_components, split_instances
from models.mask_predictor_model import erode
from models.unet import define_unet


def test_unet_keeps_any_size_and_records_its_training_size():
    net = define_unet(3, 2, 8, 3, "instance")
    for h, w in ((48, 40), (37, 53), (5, 7)):
        assert net(torch.randn(2, 3, h, w)).shape == (2, 2, h, w)
    net.train_size.copy_(torch.tensor([48, 40]))
    assert net.state_dict()["train_size"].tolist() == [48, 40]  # saved in <epoch>_net_S_A.pth


def test_connected_components_split_two_separate_discs():
    a, b = disc((40, 48), 12, 12, 7), disc((40, 48), 26, 34, 9)
    labels, n = connected_components(torch.from_numpy(a | b))
    assert n == 2
    masks = split_instances(torch.from_numpy(a | b), min_area=4)
    assert len(masks) == 2
    assert torch.equal(masks[0], torch.from_numpy(b)) and torch.equal(masks[1], torch.from_numpy(a))  # largest first


def test_min_area_drops_specks():
    speck = disc((32, 32), 5, 5, 1.5)
    big = disc((32, 32), 20, 20, 8)
    masks = split_instances(torch.from_numpy(speck | big), min_area=16)
    assert len(masks) == 1 and torch.equal(masks[0], torch.from_numpy(big))


def test_cores_keep_touching_instances_apart():
    a = disc((40, 56), 20, 17, 10)
    b = disc((40, 56), 20, 36, 10) & ~a  # touches a along a boundary
    union = torch.from_numpy(a | b)
    assert len(split_instances(union, min_area=4)) == 1  # components alone merge them
    core = (
        erode(torch.from_numpy(a).float()[None, None], 2)[0, 0].bool()
        | erode(torch.from_numpy(b).float()[None, None], 2)[0, 0].bool()
    )
    masks = split_instances(union, core, min_area=4)
    assert len(masks) == 2
    for mask, real in zip(sorted(masks, key=lambda m: int(m.nonzero()[:, 1].float().mean())), (a, b)):
        iou = (mask & torch.from_numpy(real)).sum() / (mask | torch.from_numpy(real)).sum()
        assert iou > 0.9


def test_tracker_keeps_slots_when_the_area_order_flips():
    tracker = InstanceTracker(num_slots=4)
    for i in range(8):
        moving = disc((48, 48), 30, 8 + 3 * i, 6)
        growing = disc((48, 48), 10, 36, 3 + i)
        slots = tracker.update([growing, moving] if i % 2 else [moving, growing])
        assert (slots[0] == moving).all() and (slots[1] == growing).all() and slots[2] is None


@pytest.mark.slow
def test_predictor_trains_on_the_toy_data_to_iou_08(tmp_path_factory):
    """train.py --model mask_predictor on the toy data, then test.py: IoU >= 0.8 against the real test masks."""
    import test as test_script

    data, ckpt, name = trained_predictor(tmp_path_factory)
    for net in ("S_A", "S_B"):
        assert (ckpt / name / f"latest_net_{net}.pth").is_file() and (ckpt / name / f"10_net_{net}.pth").is_file()
    results = ckpt.parent / "results"
    size = ["--loadSizeH", "48", "--loadSizeW", "48", "--fineSizeH", "48", "--fineSizeW", "48", "--gpu_ids", "-1"]
    page = test_script.main(
        [
            "--model",
            "mask_predictor",
            "--dataroot",
            str(data),
            "--name",
            name,
            "--checkpoints_dir",
            str(ckpt),
            "--results_dir",
            str(results),
            *size,
        ]
    )
    metrics = json.loads((page.parent / "mask_iou.json").read_text())
    assert metrics["A"]["images"] == 16 and metrics["B"]["images"] == 16
    assert metrics["A"]["iou"] >= 0.8 and metrics["B"]["iou"] >= 0.8, metrics
    assert "mask IoU A" in page.read_text()


def test_predictor_trained_at_another_size_resizes_and_bad_runs_are_clear_errors(tmp_path):
    """A predictor trained at 32x32 predicts a 40x56 image at 32x32 and returns masks at 40x56."""
    import numpy as np
    from masks_helpers import save_untrained_instagan
    from PIL import Image

    from models import create_model
    from models.predictors import UNetPredictor
    from options.base_options import save_options
    from options.train_options import TrainOptions

    parser = TrainOptions()
    opt = parser.parse(
        [
            "--model",
            "mask_predictor",
            "--dataroot",
            str(tmp_path),
            "--name",
            "m",
            "--checkpoints_dir",
            str(tmp_path),
            "--fineSizeH",
            "32",
            "--fineSizeW",
            "32",
            "--loadSizeH",
            "32",
            "--loadSizeW",
            "32",
            "--ngf",
            "4",
            "--gpu_ids",
            "-1",
        ]
    )
    model = create_model(opt)
    torch.nn.init.constant_(model.netS_A.body.up[1].bias, 5.0)  # everything foreground: one instance
    model.save_networks("latest")
    save_options(opt, parser.parser, "train")
    predictor = UNetPredictor("m", tmp_path, min_area=1)
    assert predictor.train_size == (32, 32)
    seen = []
    hook = predictor.model.netS_A.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    masks = predictor(Image.fromarray(np.zeros((40, 56, 3), np.uint8)), "A")
    hook.remove()
    assert seen == [(32, 32)] and len(masks) == 1 and masks[0].shape == (40, 56) and masks[0].all()
    with pytest.raises(FileNotFoundError, match="train.py --model mask_predictor"):
        UNetPredictor("missing", tmp_path)
    save_untrained_instagan(tmp_path, "gan")
    with pytest.raises(ValueError, match="not a mask_predictor"):
        UNetPredictor("gan", tmp_path)

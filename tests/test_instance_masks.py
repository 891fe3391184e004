"""``get_instance_masks()``: the input masks and their translations, slot for slot, after test() and training."""

from __future__ import annotations

import numpy as np
import torch
from conftest import make_test_opts, make_train_opts
from test_model import batch

from models import create_model
from models.masks import merge_masks, nonempty

KEYS = ["real_A", "fake_B", "real_B", "fake_A"]


def check_masks(model, ins_max: int) -> dict[str, torch.Tensor]:
    masks = model.get_instance_masks()
    assert list(masks) == KEYS
    for key, m in masks.items():
        assert m.shape[1] == ins_max and m.shape[-2:] == (32, 40), key
        assert m.min() >= -1 and m.max() <= 1, key
    for real, fake in (("real_A", "fake_B"), ("real_B", "fake_A")):
        empty = ~nonempty(masks[real])
        assert (masks[fake][empty] == -1).all()  # an empty slot stays empty
        assert (masks[fake][~empty] > -1).any()  # a translated instance is G's output, not the input
    # The merged visuals are these masks.
    assert torch.equal(merge_masks(masks["fake_B"]), model.fake_B_seg)
    assert torch.equal(merge_masks(masks["real_A"]), model.real_A_seg)
    return masks


def test_instance_masks_after_test_and_after_a_training_step(toy_root, tmp_path):
    model = create_model(make_test_opts(toy_root, tmp_path, "--ins_max", "6", "--ins_per", "2"))
    model.set_input(batch(2, [4, 1]))
    model.test()
    check_masks(model, 6)
    assert model.overlay_visuals == {
        "real_A_img": "real_A",
        "fake_B_img": "fake_B",
        "real_B_img": "real_B",
        "fake_A_img": "fake_A",
    }

    train_model = create_model(make_train_opts(toy_root, tmp_path, "--ins_max", "4", "--batch_size", "2"))
    train_model.setup(train_model.opt)
    train_model.set_input(batch(2, [3, 0]))
    train_model.optimize_parameters()
    check_masks(train_model, 4)


def test_slot_k_of_the_translation_belongs_to_slot_k_of_the_input(toy_root, tmp_path):
    """One sequential step, instances shuffled (--set_order random): each input mask keeps its translation, wherever
    the shuffle puts it (the generator is permutation equivariant)."""
    torch.manual_seed(0)
    model = create_model(
        make_test_opts(toy_root, tmp_path, "--ins_max", "4", "--ins_per", "4", "--set_order", "random")
    )
    data = batch(1, [3])
    runs = []
    for seed in (0, 1, 2):
        np.random.seed(seed)
        model.set_input(data)
        model.test()
        runs.append({k: v[0].clone() for k, v in model.get_instance_masks().items()})
    # batch() gives each instance its own area: the area names an instance in every run.
    orders = [[int((m > 0).sum()) for m in run["real_A"][:3]] for run in runs]
    assert len({tuple(o) for o in orders}) > 1, "the shuffle did not change the order; pick other seeds"
    reference = {key: (runs[0]["real_A"][k], runs[0]["fake_B"][k]) for k, key in enumerate(orders[0])}
    for run, order in zip(runs[1:], orders[1:]):
        for k, key in enumerate(order):
            real, fake = reference[key]
            assert torch.equal(run["real_A"][k], real)
            torch.testing.assert_close(run["fake_B"][k], fake, rtol=1e-5, atol=1e-5)

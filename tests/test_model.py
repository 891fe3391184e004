"""InstaGANModel: losses, the sequential loop, empty instances, one optimization step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_test_opts, make_train_opts

from models import create_model
from models.losses import GANLoss, context_loss, l1_loss
from models.masks import merge_masks, select_masks


def batch(n: int, instances: list[int], h: int = 32, w: int = 40, slots: int = 6, seed: int = 0) -> dict:
    """A synthetic batch: sample b of A has ``instances[b]`` rectangles, B has one fewer (at least 0)."""
    g = torch.Generator().manual_seed(seed)

    def side(counts):
        img = torch.rand(n, 3, h, w, generator=g) * 2 - 1
        segs = -torch.ones(n, slots, h, w)
        for b, count in enumerate(counts):
            for k in range(count):
                y0, x0 = torch.randint(0, h // 2, (2,), generator=g).tolist()
                size = 4 + 2 * k  # different areas: a defined decreasing order
                segs[b, k, y0 : y0 + size, x0 : x0 + size] = 1
        return img, segs

    A, A_segs = side(instances)
    B, B_segs = side([max(c - 1, 0) for c in instances])
    return {
        "A": A,
        "B": B,
        "A_segs": A_segs,
        "B_segs": B_segs,
        "A_paths": [f"a{i}.png" for i in range(n)],
        "B_paths": [f"b{i}.png" for i in range(n)],
    }


def count_steps(optimizer) -> list[int]:
    calls = [0]
    original = optimizer.step

    def step(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    optimizer.step = step
    return calls


# ----------------------------------------------------------------------------- losses


def test_lsgan_is_zero_at_its_target_and_positive_elsewhere():
    loss = GANLoss("lsgan")
    assert loss(torch.ones(2, 1, 4, 4), True).item() == 0
    assert loss(torch.zeros(2, 1, 4, 4), False).item() == 0
    assert loss(torch.zeros(2, 1, 4, 4), True).item() == pytest.approx(1.0)
    vanilla = GANLoss("vanilla")
    assert vanilla(torch.full((1, 1, 2, 2), 0.999), True).item() < 0.01


def test_per_sample_weights_drop_samples_and_keep_the_batch_scale():
    x, y = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    y[1] = 3
    assert l1_loss(x, y).item() == pytest.approx(2.0)
    assert l1_loss(x, y, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.5)  # Σ w_b l_b / B
    assert l1_loss(x, y, torch.tensor([1.0, 1.0])).item() == pytest.approx(2.0)


def test_context_loss_ignores_edits_inside_masks_and_grows_with_edits_outside():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    a = -torch.ones(1, 1, 16, 16)
    a[..., 2:8, 2:8] = 1  # the input instance
    b = -torch.ones(1, 1, 16, 16)
    b[..., 4:12, 4:12] = 1  # the translated instance
    assert context_loss(x, x.clone(), a, b).item() == 0

    inside = x.clone()
    inside[..., 2:8, 2:8] += 0.5  # inside a
    inside[..., 9:12, 9:12] -= 0.7  # inside b only
    assert context_loss(x, inside, a, b).item() == pytest.approx(0.0, abs=1e-7)

    small, large = x.clone(), x.clone()
    small[..., 13:16, 0:3] += 0.3  # background in both
    large[..., 13:16, 0:8] += 0.3
    l_small, l_large = context_loss(x, small, a, b).item(), context_loss(x, large, a, b).item()
    assert 0 < l_small < l_large
    assert l_small == pytest.approx(0.3 * 9 / 256, rel=1e-4)  # mean over 3 channels x 256 pixels


def test_masks_select_in_decreasing_area_and_random_keeps_the_same_set():
    segs = -torch.ones(2, 5, 8, 8)
    segs[0, 0, :2, :2] = 1  # area 4
    segs[0, 1, :, :] = 1  # 64
    segs[0, 3, :4, :4] = 1  # 16
    selected = select_masks(segs, 4, "decreasing")
    assert selected.shape == (2, 4, 8, 8)
    assert [int((s + 1).sum() / 2) for s in selected[0]] == [64, 16, 4, 0]
    assert (selected[1] == -1).all()
    np.random.seed(0)
    areas = {int((s + 1).sum() / 2) for s in select_masks(segs, 4, "random")[0][:3]}
    assert areas == {64, 16, 4}
    padded = select_masks(segs[:, :2], 4)  # fewer slots than ins_max: filled with empty ones
    assert padded.shape == (2, 4, 8, 8) and (padded[:, 2:] == -1).all()
    assert merge_masks(segs)[0, 0].eq(1).all()


# ----------------------------------------------------------------------------- model


def test_one_training_step_moves_every_parameter_with_one_update_per_group(toy_root, tmp_path):
    opt = make_train_opts(toy_root, tmp_path, "--ins_max", "4", "--ins_per", "2", "--batch_size", "2")
    torch.manual_seed(0)
    model = create_model(opt)
    model.setup(opt)
    before = {n: {k: v.clone() for k, v in net.named_parameters()} for n, net in model.networks().items()}
    g_steps, d_steps = count_steps(model.optimizer_G), count_steps(model.optimizer_D)
    model.set_input(batch(2, [4, 3]))
    model.optimize_parameters()
    assert g_steps[0] == d_steps[0] == 2  # ins_max / ins_per sequential steps, G and D each
    for name, net in model.networks().items():
        for k, v in net.named_parameters():
            assert not torch.equal(v, before[name][k]), f"{name}.{k} did not move"
    losses = model.get_current_losses()
    assert list(losses) == ["D_A", "G_A", "cyc_A", "idt_A", "ctx_A", "D_B", "G_B", "cyc_B", "idt_B", "ctx_B"]
    assert all(np.isfinite(v) and v > 0 for v in losses.values())
    visuals = model.get_current_visuals()
    assert list(visuals) == [
        "real_A_img",
        "fake_B_img",
        "rec_A_img",
        "real_A_seg",
        "fake_B_seg",
        "rec_A_seg",
        "real_B_img",
        "fake_A_img",
        "rec_B_img",
        "real_B_seg",
        "fake_A_seg",
        "rec_B_seg",
    ]
    for name, v in visuals.items():
        assert v.shape[0] == 2 and v.shape[-2:] == (32, 40) and v.shape[1] in (1, 3), name
        assert v.min() >= -1 and v.max() <= 1, name


def test_a_group_empty_in_the_whole_batch_is_skipped(toy_root, tmp_path):
    opt = make_train_opts(toy_root, tmp_path, "--ins_max", "6", "--ins_per", "2")
    model = create_model(opt)
    model.setup(opt)
    g_steps, d_steps = count_steps(model.optimizer_G), count_steps(model.optimizer_D)
    model.set_input(batch(1, [3]))  # A: groups 1, 2 used; B (2 instances): group 1 only; nobody has group 3
    model.optimize_parameters()
    assert g_steps[0] == d_steps[0] == 2


def test_images_without_instances_train_and_test(toy_root, tmp_path):
    opt = make_train_opts(toy_root, tmp_path, "--batch_size", "2")
    model = create_model(opt)
    model.setup(opt)
    g_steps = count_steps(model.optimizer_G)
    data = batch(2, [0, 1])  # sample 0 has no instance in A, neither sample in B
    model.set_input(data)
    model.optimize_parameters()
    assert g_steps[0] == 1  # the first step always runs; the second group is empty everywhere
    assert all(np.isfinite(v) for v in model.get_current_losses().values())
    assert model.fake_B_img.shape == (2, 3, 32, 40)
    assert (model.fake_B_seg[0] == -1).all()  # no instance in, none out

    test_model = create_model(make_test_opts(toy_root, tmp_path, "--ins_max", "20"))
    test_model.set_input(batch(1, [0], slots=20))
    test_model.test()
    assert not torch.equal(test_model.fake_B_img, test_model.real_A_img)  # still translated as a whole image
    assert (test_model.fake_B_seg == -1).all()


def test_inactive_samples_carry_their_image_and_have_no_loss(toy_root, tmp_path):
    opt = make_train_opts(toy_root, tmp_path, "--batch_size", "2", "--ins_max", "4", "--ins_per", "2")
    model = create_model(opt)
    model.setup(opt)
    model.set_input(batch(2, [3, 1]))  # sample 1 has nothing in group 2 (A side)
    model.eval()
    with torch.no_grad():  # the sequential loop step by step, as test() runs it
        model.forward(0)
        model.advance()
        after_first = model.A.x.clone()
        model.forward(1)
        assert model.A.weight.tolist() == [1.0, 0.0]
        model.advance()
    assert torch.equal(model.A.x[1], after_first[1])  # sample 1 sits step 2 out
    assert not torch.equal(model.A.x[0], after_first[0])


def test_test_mode_runs_the_sequential_loop_without_gradients(toy_root, tmp_path):
    opt = make_test_opts(toy_root, tmp_path, "--ins_max", "20", "--ins_per", "2")
    model = create_model(opt)
    assert model.ins_iter == 10 and model.model_names == ["G_A", "G_B"]
    model.set_input(batch(1, [5], slots=20))
    model.test()
    assert not model.fake_B_img.requires_grad
    assert (model.fake_B_seg > -1).any() and model.rec_A_img.shape == (1, 3, 32, 40)


def test_cycle_loss_falls_when_overfitting_two_images(toy_root, tmp_path):
    opt = make_train_opts(toy_root, tmp_path, "--batch_size", "2", "--lr", "0.001", "--lr_D", "0.0005")
    torch.manual_seed(0)
    model = create_model(opt)
    model.setup(opt)
    data = batch(2, [2, 1], h=24, w=24)
    history = []
    for _ in range(40):
        model.set_input(data)
        model.optimize_parameters()
        history.append(model.get_current_losses()["cyc_A"] + model.get_current_losses()["cyc_B"])
    assert np.mean(history[-5:]) < 0.6 * np.mean(history[:5])


def test_same_seed_gives_the_same_weights(toy_root, tmp_path):
    def run():
        torch.manual_seed(3)
        np.random.seed(3)
        model = create_model(make_train_opts(toy_root, tmp_path, "--set_order", "random"))
        model.setup(model.opt)
        for seed in range(3):
            model.set_input(batch(1, [3], seed=seed))
            model.optimize_parameters()
        return torch.cat([p.detach().flatten() for p in model.netG_A.parameters()])

    assert torch.equal(run(), run())


def test_ins_max_must_be_a_multiple_of_ins_per(toy_root, tmp_path):
    with pytest.raises(SystemExit):
        make_train_opts(toy_root, tmp_path, "--ins_max", "5", "--ins_per", "2")

"""The speed-ups of issue 11 compute what the plain formulation computes (docs/PERFORMANCE.md).

* ``D([x_1, …, x_K])`` (the K calls stacked along the batch, one convolution per layer, σ_k applied to the
  outputs) equals K successive calls of D's parametrized layers, power steps of the spectral norms included;
* the generators' batched passes (``batch_generators``) give the outputs, losses and gradients of one call per
  input;
* a network that sits out a step still gets zero gradients (Adam's momentum moves it, as in the 2018 code).
"""

from __future__ import annotations

import copy

import torch
from conftest import make_train_opts

from models import create_model
from models.discriminators import define_D
from models.layers import FewOutputsConv2d
from models.masks import nonempty


def masks_batch(seed: int, used: list[int], b: int = 2, slots: int = 4, h: int = 32, w: int = 32) -> torch.Tensor:
    x = torch.rand(b, 3 + slots, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    x[:, 3:] = -1
    for k, i in enumerate(used):
        x[0, 3 + i, 2 + 3 * k : 20, 4:28] = 1
    x[1, 3 + used[0], 10:30, 10:30] = 1
    return x


def module_calls_D(D, x: torch.Tensor) -> torch.Tensor:
    """One call of D through its parametrized Sequentials (conv(x, W / σ) in each layer), one ``feature_seg`` call
    per used slot, as the 2018 code."""
    img, segs = x[:, : D.input_nc], x[:, D.input_nc :]
    present = nonempty(segs)
    feat = D.feature_img(img)
    feat_sum = torch.zeros_like(feat)
    for i in present.any(0).nonzero()[:, 0].tolist():
        feat_sum = feat_sum + D.feature_seg(segs[:, i : i + 1]) * present[:, i, None, None, None].to(feat.dtype)
    return D.classifier(torch.cat([feat, feat_sum], 1))


def test_discriminator_list_call_equals_successive_calls():
    torch.manual_seed(0)
    grouped = define_D(3, 8).double().train()
    plain = copy.deepcopy(grouped)
    real, fake = masks_batch(1, [0, 2, 3]), masks_batch(2, [1]).requires_grad_(True)
    fake_plain = fake.detach().clone().requires_grad_(True)
    for _ in range(2):  # the second round starts from u, v advanced by the first
        outs = grouped([real, fake])
        ref = [module_calls_D(plain, real), module_calls_D(plain, fake_plain)]
        for o, r in zip(outs, ref):
            torch.testing.assert_close(o, r, rtol=1e-12, atol=1e-12)
        ((outs[0] ** 2).mean() + ((outs[1] - 1) ** 2).mean()).backward()
        ((ref[0] ** 2).mean() + ((ref[1] - 1) ** 2).mean()).backward()
    torch.testing.assert_close(fake.grad, fake_plain.grad, rtol=1e-10, atol=1e-14)
    for (name, p), q in zip(grouped.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)
    plain_state = plain.state_dict()
    for key, value in grouped.state_dict().items():  # u, v made the same power steps
        torch.testing.assert_close(value, plain_state[key], rtol=0, atol=0, msg=key)


def two_steps(opts, batched: bool) -> tuple[dict, dict]:
    torch.manual_seed(0)
    model = create_model(opts, "cpu")
    model.batch_generators = batched
    for name in model.model_names:
        getattr(model, f"net{name}").double()
    data = {}
    for d, seed, used in (("A", 3, [0, 1, 3]), ("B", 4, [2])):  # B: one mask, none in the second group
        x = masks_batch(seed, used, h=32, w=40)
        data[d], data[f"{d}_segs"], data[f"{d}_paths"] = x[:, :3], x[:, 3:], [d] * 2
    model.set_input(data)
    model.optimize_parameters()
    losses = {k: float(v) for k, v in model.get_current_losses().items()}
    weights = {
        f"{n}.{k}": v.clone() for n in model.model_names for k, v in getattr(model, f"net{n}").state_dict().items()
    }
    return losses, weights


def test_batched_generator_passes_equal_one_call_per_input(toy_root, tmp_path):
    """Two sequential steps (the second with one direction only), float64: the same losses and weights after
    both updates. Batch norm and dropout keep one call per input."""
    opts = make_train_opts(toy_root, tmp_path, "--ins_max", "4", "--ins_per", "2", "--pool_size", "0")
    losses, weights = two_steps(opts, True)
    ref_losses, ref_weights = two_steps(opts, False)
    for name, value in losses.items():
        assert abs(value - ref_losses[name]) <= 1e-10 * max(1.0, abs(value)), name
    for key, value in weights.items():
        if key.endswith(".bias"):  # biases before instance norm: a true gradient of 0, Adam turns noise into ±lr
            continue
        torch.testing.assert_close(value, ref_weights[key], rtol=1e-8, atol=1e-10, msg=key)
    batch_norm = make_train_opts(toy_root, tmp_path, "--norm", "batch")
    assert not create_model(batch_norm, "cpu").batch_generators


def test_network_without_loss_in_a_step_gets_zero_gradients(toy_root, tmp_path):
    opts = make_train_opts(toy_root, tmp_path, "--ins_max", "4", "--ins_per", "2", "--pool_size", "0")
    torch.manual_seed(0)
    model = create_model(opts, "cpu")
    x = masks_batch(5, [0, 1, 3]).float()
    y = masks_batch(6, [2]).float()
    model.set_input(
        {
            "A": x[:, :3],
            "A_segs": x[:, 3:],
            "B": y[:, :3],
            "B_segs": y[:, 3:],
            "A_paths": ["a"] * 2,
            "B_paths": ["b"] * 2,
        }
    )
    model.optimize_parameters()  # step 2: B→A has no instance left (one mask), so D_B has no loss
    assert all(p.grad is not None and float(p.grad.abs().max()) == 0 for p in model.netD_B.parameters())


def test_few_outputs_conv_equals_conv2d():
    """The generators' last convolution (7x7 to 1 or 3 channels) as a matrix product and shifted sums: the values
    and gradients of nn.Conv2d (float64), the same parameters and state_dict."""
    torch.manual_seed(0)
    for out_nc in (1, 3):
        fast = FewOutputsConv2d(16, out_nc, 7).double()
        plain = torch.nn.Conv2d(16, out_nc, 7).double()
        plain.load_state_dict(fast.state_dict())
        x = torch.randn(3, 16, 20, 26, dtype=torch.float64, requires_grad=True)
        x_plain = x.detach().clone().requires_grad_(True)
        y, y_plain = fast(x), plain(x_plain)
        torch.testing.assert_close(y, y_plain, rtol=1e-12, atol=1e-12)
        g = torch.randn_like(y)
        y.backward(g)
        y_plain.backward(g)
        torch.testing.assert_close(x.grad, x_plain.grad, rtol=1e-12, atol=1e-12)
        for (name, p), q in zip(fast.named_parameters(), plain.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-10, msg=name)

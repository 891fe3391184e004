"""The batched hot path equals the straightforward per-instance one, and the speed options keep their promises.

The networks encode all non-empty masks of a batch in one ``encoder_seg`` call, sum them per sample with
``index_add`` and decode them in one ``decoder_seg`` call. The reference below loops over samples and instances
exactly as docs/DESIGN.md §1 states the formulas. Losses and gradients must agree to float32 noise.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from conftest import make_train_opts

from models import create_model
from models.discriminators import define_D
from models.generators import ResnetSetGenerator, define_G


def reference_G(G: ResnetSetGenerator, x: torch.Tensor) -> torch.Tensor:
    """docs/DESIGN.md §1, one sample and one instance at a time."""
    nc, outs = G.input_nc, []
    for b in range(x.shape[0]):
        img, segs = x[b : b + 1, :nc], x[b : b + 1, nc:]
        enc_img = G.encoder_img(img)
        present = [n for n in range(segs.shape[1]) if bool((segs[0, n] > -1).any())]
        enc = {n: G.encoder_seg(segs[:, n : n + 1]) for n in present}
        s = torch.zeros_like(enc_img)
        for n in present:
            s = s + enc[n]
        out = [G.decoder_img(torch.cat([enc_img, s], 1))]
        for n in range(segs.shape[1]):
            out.append(G.decoder_seg(torch.cat([enc[n], enc_img, s], 1)) if n in present else segs[:, n : n + 1])
        outs.append(torch.cat(out, 1))
    return torch.cat(outs, 0)


def reference_D(D, x: torch.Tensor) -> torch.Tensor:
    nc, outs = D.input_nc, []
    for b in range(x.shape[0]):
        img, segs = x[b : b + 1, :nc], x[b : b + 1, nc:]
        feat = D.feature_img(img)
        s = torch.zeros_like(feat)
        for n in range(segs.shape[1]):
            if bool((segs[0, n] > -1).any()):
                s = s + D.feature_seg(segs[:, n : n + 1])
        outs.append(D.classifier(torch.cat([feat, s], 1)))
    return torch.cat(outs, 0)


def set_batch(b: int = 3, slots: int = 4, h: int = 32, w: int = 40, seed: int = 0) -> torch.Tensor:
    """Images with 2, 0 and 3 instances (one with a gap between slots): ``[b, 3 + slots, h, w]``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3 + slots, h, w, generator=g) * 2 - 1
    x[:, 3:] = -1
    x[0, 3, 2:12, 3:20] = x[0, 4, 15:30, 10:30] = 1
    x[2, 3, 0:8, 0:8] = x[2, 5, 10:28, 5:15] = x[2, 6, 20:32, 20:40] = 1
    return x


def grads(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}


def assert_grads_close(a: dict, b: dict, rtol: float = 1e-4) -> None:
    assert a.keys() == b.keys()
    # Biases before instance norm have a true gradient of 0, only float noise: hence a floor relative to the
    # network's largest gradient.
    floor = rtol / 10 * max(g.norm().item() for g in a.values())
    for k in a:
        scale = a[k].norm().item()
        diff = (a[k] - b[k]).norm().item()
        assert diff <= rtol * scale + floor, f"{k}: |diff| {diff:.2e} vs |grad| {scale:.2e}"


def test_generator_batched_equals_per_instance():
    torch.manual_seed(0)
    G = define_G(3, 3, 8)
    x = set_batch()
    weight = torch.rand(3, 7, 32, 40, generator=torch.Generator().manual_seed(1))
    results = []
    for forward in (G, lambda t: reference_G(G, t)):
        G.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = forward(xi)
        (y * weight).sum().backward()
        results.append((y.detach(), grads(G), xi.grad))
    (y1, g1, x1), (y2, g2, x2) = results
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    assert_grads_close(g1, g2)
    torch.testing.assert_close(x1, x2, rtol=1e-4, atol=1e-5 * x1.abs().max().item())


def test_discriminator_batched_equals_per_instance():
    torch.manual_seed(0)
    D = define_D(3, 8).eval()  # eval: spectral norm uses its stored u, v (no power step per call)
    x = set_batch()
    results = []
    for forward in (D, lambda t: reference_D(D, t)):
        D.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = forward(xi)
        (y**2).mean().backward()
        results.append((y.detach(), grads(D), xi.grad))
    (y1, g1, x1), (y2, g2, x2) = results
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-6)
    assert_grads_close(g1, g2)
    torch.testing.assert_close(x1, x2, rtol=1e-4, atol=1e-5 * x1.abs().max().item())


def model_batch(n: int = 3, slots: int = 4) -> dict:
    x = set_batch(b=n, slots=slots)
    y = set_batch(b=n, slots=slots, seed=1).flip(0)
    return {
        "A": x[:, :3],
        "A_segs": x[:, 3:],
        "B": y[:, :3],
        "B_segs": y[:, 3:],
        "A_paths": ["a"] * n,
        "B_paths": ["b"] * n,
    }


def one_step(opts, reference: bool, monkeypatch, dtype=torch.float32) -> tuple[dict, dict]:
    """One optimize_parameters with a single sequential step (so G and D are differentiated at the initial
    weights: after an Adam step, float noise in near-zero gradients would already have moved weights by ±lr)."""
    with monkeypatch.context() as patch:
        if reference:
            patch.setattr(ResnetSetGenerator, "forward", reference_G)
        torch.manual_seed(0)
        model = create_model(opts, "cpu")
        for name in model.model_names:
            getattr(model, f"net{name}").to(dtype)
        batch = {k: v.to(dtype) if torch.is_tensor(v) else v for k, v in model_batch().items()}
        model.set_input(batch)
        model.optimize_parameters()
    losses = {k: float(v) for k, v in model.get_current_losses().items()}
    return losses, {name: grads(getattr(model, f"net{name}")) for name in model.model_names}


def test_model_step_batched_equals_per_instance(toy_root, tmp_path, monkeypatch):
    """A whole training step (G and D updates) with the batched generator against the per-instance one: the
    losses in float32 to float noise; every gradient in float64 (in float32 a few small gradients of D pick up
    relative noise of 1e-3 through the GAN loss, which float64 shows to be noise: it agrees to 1e-13)."""
    opts = make_train_opts(toy_root, tmp_path, "--ins_max", "4", "--ins_per", "4", "--pool_size", "0")
    losses, _ = one_step(opts, False, monkeypatch)
    ref_losses, _ = one_step(opts, True, monkeypatch)
    for name, value in losses.items():
        assert value == pytest.approx(ref_losses[name], rel=1e-5, abs=1e-6), name
    _, grads_batched = one_step(opts, False, monkeypatch, torch.float64)
    _, grads_ref = one_step(opts, True, monkeypatch, torch.float64)
    for name in grads_batched:
        assert_grads_close(grads_batched[name], grads_ref[name], rtol=1e-9)


def test_ddp_zero_touch_changes_no_value_and_reaches_every_parameter():
    """Under DDP a rank without masks must still give the mask branches a gradient; the value must not move."""
    torch.manual_seed(0)
    G, D = define_G(3, 3, 8), define_D(3, 8)
    x = set_batch()[1:2]  # no instance
    plain_G, plain_D = G(x), copy.deepcopy(D)(x)
    G.always_use_all_params = D.always_use_all_params = True
    touched_G, touched_D = G(x), D(x)
    assert torch.equal(plain_G, touched_G) and torch.equal(plain_D, touched_D)
    (touched_G.sum() + touched_D.sum()).backward()
    for net in (G, D):
        missing = [k for k, p in net.named_parameters() if p.grad is None]
        assert not missing, missing
    assert all(float(p.grad.abs().max()) == 0 for p in G.encoder_seg.parameters())


def test_amp_bf16_step_on_cpu(toy_root, tmp_path):
    opts = make_train_opts(toy_root, tmp_path, "--amp", "bf16")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "this CPU has no native bfloat16": slow, still correct
        model = create_model(opts, "cpu")
    model.set_input(model_batch())
    model.optimize_parameters()
    losses = model.get_current_losses()
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    assert model.fake_B_img.dtype == torch.float32  # outputs, pools and losses stay float32 under autocast
    model.test()
    assert model.fake_A_img.dtype == torch.float32


def test_fp16_needs_cuda(toy_root, tmp_path):
    opts = make_train_opts(toy_root, tmp_path, "--amp", "fp16")
    with pytest.raises(ValueError, match="CUDA"):
        create_model(opts, "cpu")


def test_channels_last_gives_the_same_step(toy_root, tmp_path, monkeypatch):
    base = make_train_opts(toy_root, tmp_path, "--ins_max", "4", "--ins_per", "4", "--pool_size", "0")
    cl = make_train_opts(toy_root, tmp_path, "--ins_max", "4", "--ins_per", "4", "--pool_size", "0", "--channels_last")
    losses, _ = one_step(base, False, monkeypatch)
    cl_losses, _ = one_step(cl, False, monkeypatch)
    for name, value in losses.items():
        assert cl_losses[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name

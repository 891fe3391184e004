#!/usr/bin/env python
"""Compare this reimplementation with the authors' 2018 InstaGAN code, number for number (issue 2).

    python scripts/compare_with_original.py --original /path/to/a/checkout/of/sangwoomo/instagan

Both models are built with the same options, the original's freshly initialized weights are copied into ours
through ``models.compat`` (which maps its ``*.module.weight_bar/_u/_v`` spectral-norm names), both run one
``optimize_parameters`` on the same batch, and the script prints, per case and per quantity, the largest
absolute and relative difference of

* the selected instance masks,
* every generator output of every sequential step (``fake``/``rec`` of both directions),
* the ten losses of every step (ours reports the mean over the steps, the original kept the last step's value,
  so the per-step values are recorded by wrapping methods of both models),
* every gradient that each optimizer step applies,
* every tensor of G_A, G_B, D_A, D_B after the update (spectral-norm ``u``/``v`` included), and the update
  itself (``after - before``),
* the reported losses (one-step cases) and the twelve visuals (where no step was skipped),
* the twelve visuals of the test-time loop, ``test()``, at the initial weights (after a skipped step the
  original's ``test()`` appends the previous step's masks again to its cycled masks, so there ``rec_*_seg`` are
  left out),
* the image pools' contents after the update,
* a forward pass of G and D at the default width (ngf = ndf = 64).

Cases: batch 1, ngf = ndf = 16, 1, 2 and 4 sequential steps, steps where one direction has no instance left,
non-square images, BtoA, ``--set_order random``, ``--ins_max 8``, ``--no_lsgan``, ``--lambda_idt 0`` (ours does
not compute the identity terms, the original's are 0), image pools that already hold 50 images (each query then
swaps with probability 1/2); each in float64 (where agreement to rounding is unambiguous) and float32.

The verdict cannot pass by accident: a NaN or inf on either side, or tensors whose shapes differ, fail their
group whatever its tolerance (and a group whose every item is broken is still reported), and a step, output,
loss or gradient present on one side only fails the case.

Nothing of the original is copied here: its modules are imported from ``--original`` at run time, under a
private package name so that its ``models`` and ``util`` do not clash with ours. Runtime shims, applied by
monkeypatching instances only:

* ``SpectralNorm`` gets fresh ``weight_u``/``weight_v`` Parameter objects before each power iteration, so that
  its ``u.data = ...`` no longer rewrites the values an earlier forward saved for backward; PyTorch 0.4 kept
  those (see ``shim_spectral_norm``; ``--no_sn_shim`` shows the difference).
* ``Optimizer.zero_grad`` zeroes the gradients (PyTorch 0.4's behaviour) instead of setting them to ``None``
  (the default since PyTorch 2.0). This matters: a discriminator that sits out a step (its direction has no
  instance left) keeps being moved by Adam's momentum in the 2018 code. Ours does the same.
* With ``--adam04``, the original's optimizers use PyTorch 0.4's Adam update (``eps`` added to ``sqrt(v)``
  before the bias correction) instead of today's; ours keeps ``torch.optim.Adam``. This shows how far today's
  Adam moves us from a 2018 run; it is not part of the pass/fail verdict.

The original's discriminators use ``--lr`` (there was no ``--lr_D``); ours is run with ``--lr_D`` equal to ``--lr``.
Relative differences are ``max|ours - original| / max|original|`` per tensor (per quantity group in the table).
Exit status 0 when every checked quantity is within the tolerance of its dtype, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import math
import random
import sys
import types
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models import create_model  # noqa: E402
from models.compat import convert_state_dict, load_state_dict_checked  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402

LOSS_NAMES = ["D_A", "G_A", "cyc_A", "idt_A", "ctx_A", "D_B", "G_B", "cyc_B", "idt_B", "ctx_B"]
G_LOSSES_A = ["G_A", "cyc_A", "idt_B", "ctx_A"]  # computed when direction A runs at a step
G_LOSSES_B = ["G_B", "cyc_B", "idt_A", "ctx_B"]
NETS = ["G_A", "G_B", "D_A", "D_B"]
# Largest relative difference accepted, per dtype and quantity (None: printed, not judged). Summation orders differ
# (ours batches the instances through the shared encoders and sums with index_add; the original loops), so the
# numbers agree to rounding, which float64 makes visible as such. Adam's first step is lr * g / (|g| + eps): it
# turns gradient rounding near g = 0 into update differences up to 2 lr (a flipped sign) in float32, and up to
# ~lr * |dg| / eps in float64, so updates are judged in float64 only, relative to the largest update (~lr).
# Values of step 2 and later inherit those weight differences: in float64, step 1 agrees to ~1e-11 and later
# steps to ~1e-8. The bugs this script has found moved the numbers by 1e-3 or more.
# In float32 the flipped signs move later steps by up to ~1e-1 (the same happens between two runs of either code
# on different hardware), so there only step 1 is judged. Even there, float32 weight gradients of layers behind
# instance norms differ by up to ~1e-2 relative (cancellation; the same gradients agree to ~1e-11 in float64).
TOLERANCE = {
    torch.float64: {
        "default": 1e-7,
        "later": 1e-6,
        "gradients": 1e-6,
        "weights after": 1e-6,
        "update (after - before)": 1e-3,
    },
    torch.float32: {
        "default": 1e-4,
        "later": None,
        "gradients": 5e-2,
        "weights after": None,
        "update (after - before)": None,
        "visuals": None,
    },
}


def tolerance(dtype: torch.dtype, quantity: str) -> float | None:
    if quantity.endswith("[info]"):
        return None
    table = TOLERANCE[dtype]
    if quantity.startswith("gradients"):
        tol = table["gradients"]
        return tol if "step 1" in quantity else (None if table["later"] is None else max(tol, table["later"]))
    if "steps 2+" in quantity:
        return table["later"]
    return table.get(quantity, table["default"])


# --------------------------------------------------------------------------------------------- the original


_PKG = "_instagan_original"


def load_original(root: Path) -> types.ModuleType:
    """Import ``models/insta_gan_model.py`` (with its ``networks``, ``base_model`` and ``util/image_pool``) from a
    checkout of sangwoomo/instagan, as ``_instagan_original.models.*``. Its package ``__init__`` files are not run
    (they import the data loaders and every model). Returns the ``insta_gan_model`` module."""
    root = root.resolve()
    needed = ["models/insta_gan_model.py", "models/networks.py", "models/base_model.py", "util/image_pool.py"]
    missing = [p for p in needed if not (root / p).is_file()]
    if missing:
        raise SystemExit(f"--original {root} is not a checkout of sangwoomo/instagan: missing {', '.join(missing)}")
    if f"{_PKG}.models.insta_gan_model" in sys.modules:
        return sys.modules[f"{_PKG}.models.insta_gan_model"]
    for name, path in ((_PKG, root), (f"{_PKG}.models", root / "models"), (f"{_PKG}.util", root / "util")):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(path)]
        sys.modules[name] = pkg
    image_pool = importlib.import_module(f"{_PKG}.util.image_pool")
    # insta_gan_model.py does `from util.image_pool import ImagePool`: our repository has a `util` package too,
    # so the original's is put in its place for the duration of the import only.
    saved = {k: sys.modules.get(k) for k in ("util", "util.image_pool")}
    sys.modules["util"], sys.modules["util.image_pool"] = sys.modules[f"{_PKG}.util"], image_pool
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            module = importlib.import_module(f"{_PKG}.models.insta_gan_model")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    shim_spectral_norm(sys.modules[f"{_PKG}.models.networks"])
    return module


_SN_SHIM = {"on": True}


def shim_spectral_norm(networks: types.ModuleType) -> None:
    """Give every forward of the original's ``SpectralNorm`` fresh ``weight_u``/``weight_v`` Parameter objects.

    Its ``_update_u_v`` assigns ``u.data = ...`` and ``v.data = ...``. PyTorch 0.4 saved the *data* tensor of u and v
    for the backward of ``sigma = u.dot(W.mv(v))``, so a later ``.data =`` (the next forward of the same layer:
    ``netD(fake)`` after ``netD(real)``, or the next mask through ``feature_seg``) left an earlier graph alone.
    Today a saved leaf is the tensor itself and ``.data =`` rewrites it in place without a version bump, so the
    earlier backward silently uses the later u and v (D's gradients then differ by ~5e-3 relative). Swapping in new
    Parameter objects before each update restores the 0.4 behaviour; the values computed are unchanged.
    """
    SN = networks.SpectralNorm
    if getattr(SN, "_compare_shimmed", False):
        return
    update = SN._update_u_v

    def _update_u_v(self):
        if _SN_SHIM["on"]:
            for suffix in ("_u", "_v"):
                old = self.module._parameters[self.name + suffix]
                self.module._parameters[self.name + suffix] = torch.nn.Parameter(
                    old.data.clone(), requires_grad=old.requires_grad
                )
        update(self)

    SN._update_u_v, SN._compare_shimmed = _update_u_v, True


def adam04_step(optimizer: torch.optim.Optimizer):
    """PyTorch 0.4's Adam update for ``optimizer`` (no weight decay, no amsgrad), as a replacement ``step``:
    ``p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``."""

    @torch.no_grad()
    def step(closure=None):
        for group in optimizer.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = optimizer.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                exp_avg, exp_avg_sq, grad = state["exp_avg"], state["exp_avg_sq"], p.grad
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                step_size = group["lr"] * math.sqrt(1 - beta2 ** state["step"]) / (1 - beta1 ** state["step"])
                p.addcdiv_(exp_avg, denom, value=-step_size)

    return step


def build_original(module: types.ModuleType, opt: Namespace, adam04: bool):
    model = module.InstaGANModel()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints 'initialize network with normal' four times
        model.initialize(opt)
    for optimizer in model.optimizers:
        zero_grad = optimizer.zero_grad
        optimizer.zero_grad = lambda set_to_none=False, _z=zero_grad: _z(set_to_none=False)  # PyTorch 0.4 semantics
        if adam04:
            optimizer.step = adam04_step(optimizer)
    return model


# ------------------------------------------------------------------------------------------------ recording


@dataclass
class Record:
    outputs: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)  # (step, fake_B|rec_A|...) -> tensor
    losses: dict[tuple[int, str], float] = field(default_factory=dict)  # (step, loss name) -> value
    ran: dict[int, tuple[bool, bool]] = field(default_factory=dict)  # step -> (A ran, B ran)
    grads: dict[tuple[int, str, str], torch.Tensor] = field(default_factory=dict)  # (step, net, our key) -> grad


def record_grads(rec: Record, model, state: dict, ours_nets: dict[str, torch.nn.Module]) -> None:
    """Wrap both optimizers' ``step`` to keep every gradient they apply, under our parameter names."""
    for opt_name in ("optimizer_G", "optimizer_D"):
        optimizer = getattr(model, opt_name)
        step = optimizer.step

        def recording_step(*args, _step=step, **kwargs):
            for name in NETS:
                net = getattr(model, f"net{name}")
                grads = {
                    k: p.grad
                    for k, p in net.named_parameters()
                    if p.grad is not None and p.requires_grad and not k.endswith(("_u", "_v"))
                }
                for key, grad in convert_state_dict(grads, ours_nets[name]).items():
                    rec.grads[state["step"], name, key] = grad.detach().clone()
            return _step(*args, **kwargs)

        optimizer.step = recording_step


def record_original(model, ours_nets: dict[str, torch.nn.Module]) -> Record:
    rec, state = Record(), {"step": -1}
    record_grads(rec, model, state, ours_nets)
    forward, backward_G = model.forward, model.backward_G
    backward_D_A, backward_D_B = model.backward_D_A, model.backward_D_B

    def forward_rec(idx=0):
        forward(idx)
        state["step"] = idx
        ran = (bool(model.forward_A), bool(model.forward_B))
        rec.ran[idx] = ran
        if ran[0]:
            rec.outputs[idx, "fake_B"] = model.fake_B_sng.detach().clone()
            rec.outputs[idx, "rec_A"] = model.rec_A_sng.detach().clone()
        if ran[1]:
            rec.outputs[idx, "fake_A"] = model.fake_A_sng.detach().clone()
            rec.outputs[idx, "rec_B"] = model.rec_B_sng.detach().clone()

    def backward_G_rec():
        backward_G()
        m = state["step"]
        names = (G_LOSSES_A if model.forward_A else []) + (G_LOSSES_B if model.forward_B else [])
        for name in names:
            rec.losses[m, name] = float(torch.as_tensor(getattr(model, f"loss_{name}")).detach())

    def backward_D_rec(side, fn):
        def run():
            fn()
            rec.losses[state["step"], f"D_{side}"] = float(getattr(model, f"loss_D_{side}").detach())

        return run

    model.forward, model.backward_G = forward_rec, backward_G_rec
    model.backward_D_A, model.backward_D_B = backward_D_rec("A", backward_D_A), backward_D_rec("B", backward_D_B)
    return rec


def record_ours(model) -> Record:
    rec, state = Record(), {"step": -1}
    record_grads(rec, model, state, {name: getattr(model, f"net{name}") for name in NETS})
    forward, compute_G_loss, compute_D_loss = model.forward, model.compute_G_loss, model.compute_D_loss

    def forward_rec(m=0):
        forward(m)
        state["step"] = m
        rec.ran[m] = (model.A.ran, model.B.ran)
        for d, fake, back in ((model.A, "fake_B", "rec_A"), (model.B, "fake_A", "rec_B")):
            if d.ran:
                rec.outputs[m, fake] = d.fake.detach().clone()
                rec.outputs[m, back] = d.rec.detach().clone()

    def loss_rec(fn):
        def run(A, B):
            losses = fn(A, B)
            for name, value in losses.items():
                rec.losses[state["step"], name] = float(value.detach())
            return losses

        return run

    model.forward = forward_rec
    model.compute_G_loss, model.compute_D_loss = loss_rec(compute_G_loss), loss_rec(compute_D_loss)
    return rec


# --------------------------------------------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    ins_max: int
    ins_per: int
    n_A: int  # instances in the A image
    n_B: int
    h: int = 64
    w: int = 64
    ngf: int = 16
    direction: str = "AtoB"
    set_order: str = "decreasing"
    options: tuple[str, ...] = ()  # more options, e.g. ("--no_lsgan",)
    full_pool: bool = False  # both image pools start with the same 50 images: D sees a pool past 50 images


CASES = [
    Case("1 step, A2/B1", ins_max=2, ins_per=2, n_A=2, n_B=1),
    Case("2 steps, A3/B2 (B skips step 2)", ins_max=4, ins_per=2, n_A=3, n_B=2),
    Case("2 steps, A4/B3 (every group non-empty)", ins_max=4, ins_per=2, n_A=4, n_B=3, h=32, w=48),
    Case("2 steps, A1/B4 (A skips step 2)", ins_max=4, ins_per=2, n_A=1, n_B=4, h=48, w=32),
    Case("4 steps of 1, A3/B4 (A skips step 4)", ins_max=4, ins_per=1, n_A=3, n_B=4, h=32, w=32),
    Case("2 steps, BtoA, A3/B4", ins_max=4, ins_per=2, n_A=3, n_B=4, h=32, w=48, direction="BtoA"),
    Case("2 steps, --set_order random, A3/B4", ins_max=4, ins_per=2, n_A=3, n_B=4, h=32, w=32, set_order="random"),
    Case("4 steps, --ins_max 8, A5/B7 (A skips step 4)", ins_max=8, ins_per=2, n_A=5, n_B=7, h=32, w=32),
    Case("2 steps, --no_lsgan, A3/B4", ins_max=4, ins_per=2, n_A=3, n_B=4, h=32, w=32, options=("--no_lsgan",)),
    Case(
        "2 steps, --lambda_idt 0, A4/B3", ins_max=4, ins_per=2, n_A=4, n_B=3, h=32, w=32, options=("--lambda_idt", "0")
    ),
    Case("2 steps, image pools past 50, A3/B4", ins_max=4, ins_per=2, n_A=3, n_B=4, h=32, w=32, full_pool=True),
]


def make_batch(n_A: int, n_B: int, h: int, w: int, slots: int, seed: int, dtype: torch.dtype) -> dict:
    """Images in [-1, 1] and ``slots`` masks per image; the instances (ellipses of distinct areas) sit in scattered
    slots and not in decreasing order of area, so mask selection is exercised too."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")

    def image():
        coarse = torch.rand(1, 3, h // 8, w // 8, generator=g, dtype=torch.float64) * 2 - 1
        smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        return (0.7 * smooth + 0.3 * (torch.rand(1, 3, h, w, generator=g, dtype=torch.float64) * 2 - 1)).to(dtype)

    def masks(n):
        segs = -torch.ones(1, slots, h, w, dtype=torch.float64)
        order = torch.randperm(slots, generator=g)[:n].tolist()
        for k, slot in enumerate(order):
            cy, cx = (
                torch.rand(2, generator=g, dtype=torch.float64) * torch.tensor([h, w]) * 0.6
                + 0.2 * torch.tensor([h, w])
            ).tolist()
            ry, rx = h * (0.12 + 0.05 * ((k * 7) % 5)), w * (0.10 + 0.04 * ((k * 3) % 4) + 0.01 * k)
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            segs[0, slot][inside] = 1.0
        return segs.to(dtype)

    return {"A": image(), "B": image(), "A_segs": masks(n_A), "B_segs": masks(n_B), "A_paths": ["a"], "B_paths": ["b"]}


def options_for(case: Case, lr: float) -> Namespace:
    args = [
        "--dataroot",
        "unused",
        "--gpu_ids",
        "-1",
        "--ngf",
        str(case.ngf),
        "--ndf",
        str(case.ngf),
        "--ins_max",
        str(case.ins_max),
        "--ins_per",
        str(case.ins_per),
        "--pool_size",
        "50",
        "--lr",
        str(lr),
        "--lr_D",
        str(lr),
        "--direction",
        case.direction,
        "--set_order",
        case.set_order,
        "--checkpoints_dir",
        "/nonexistent",
        "--name",
        "compare_with_original",
        *case.options,
    ]
    return TrainOptions().parse(args)


def fill_pools(ours, theirs, channels: int, h: int, w: int, seed: int, dtype: torch.dtype) -> None:
    """Both models' image pools full (``--pool_size`` 50) with the same images, so each query swaps with
    probability 1/2 (Python's ``random``, seeded alike before both runs)."""
    g = torch.Generator().manual_seed(seed)
    for name in ("fake_A_pool", "fake_B_pool"):
        size = getattr(ours, name).pool_size
        images = [
            (torch.rand(1, channels, h, w, generator=g, dtype=torch.float64) * 2 - 1).to(dtype) for _ in range(size)
        ]
        getattr(ours, name).images = [im.clone() for im in images]
        getattr(theirs, name).images, getattr(theirs, name).num_imgs = [im.clone() for im in images], size


def state_of(net: torch.nn.Module, ours: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """A network's tensors under our key names (the original's converted through models.compat)."""
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return dict(convert_state_dict(sd, ours)) if ours is not None else sd


# ---------------------------------------------------------------------------------------------- comparison


def biases_before_instance_norm(net: torch.nn.Module) -> set[str]:
    """Keys of conv biases followed directly by an InstanceNorm2d (in our networks). Their gradient is exactly 0
    in exact arithmetic (the norm subtracts the channel mean), so what autograd returns is rounding noise; Adam's
    first step divides it by its own magnitude and turns it into a random +-lr. They are compared on their own."""
    keys = set()
    for prefix, module in net.named_modules():
        if isinstance(module, torch.nn.Sequential):
            children = list(module.named_children())
            for (name, child), (_, after) in zip(children, children[1:]):
                if getattr(child, "bias", None) is not None and isinstance(after, torch.nn.InstanceNorm2d):
                    keys.add(f"{prefix}.{name}.bias" if prefix else f"{name}.bias")
    return keys


@dataclass
class Diff:
    """The largest differences over a group of tensor pairs. A pair that cannot be compared (shapes differ) or
    whose difference is not finite (NaN or inf on either side) makes the group ``broken``: it fails whatever the
    tolerance, and it still counts in ``n``, so a group whose every pair is broken is reported, not dropped."""

    abs: float = 0.0
    rel: float = 0.0
    n: int = 0
    worst: str = ""
    items: list[tuple[str, float, float]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    def add(self, ours: torch.Tensor | float, theirs: torch.Tensor | float, label: str) -> None:
        ours, theirs = torch.as_tensor(ours, dtype=torch.float64), torch.as_tensor(theirs, dtype=torch.float64)
        self.n += 1
        if ours.shape != theirs.shape:
            self._break(f"{label}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}")
            return
        if not (bool(ours.isfinite().all()) and bool(theirs.isfinite().all())):
            bad = [name for name, t in (("ours", ours), ("original", theirs)) if not bool(t.isfinite().all())]
            self._break(f"{label}: non-finite values in {' and '.join(bad)}")
            return
        a = (ours - theirs).abs().max().item() if ours.numel() else 0.0
        scale = theirs.abs().max().item() if theirs.numel() else 0.0
        r = a / scale if scale > 0 else (0.0 if a == 0 else math.inf)
        self.items.append((label, a, r))
        if not self.broken and (r > self.rel or (r == self.rel and a > self.abs)):
            self.worst = label
        self.abs, self.rel = max(self.abs, a), max(self.rel, r)

    def _break(self, why: str) -> None:
        self.broken.append(why)
        self.abs = self.rel = math.inf
        self.worst = self.broken[0]

    def passes(self, tol: float | None) -> bool:
        """Within ``tol`` (None: not judged), and nothing broken (judged even where the values are not)."""
        return not self.broken and (tol is None or self.rel <= tol)


def run_case(
    case: Case, original, dtype: torch.dtype, adam04: bool, seed: int = 0
) -> tuple[dict[str, Diff], list[str]]:
    """Returns the differences per quantity group and notes (structural mismatches)."""
    notes: list[str] = []
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(seed)
        opt = options_for(case, lr=0.0002)
        theirs = build_original(original, Namespace(**{**vars(opt), "gpu_ids": []}), adam04)
        ours = create_model(opt, "cpu")
        for name in NETS:
            load_state_dict_checked(
                getattr(ours, f"net{name}"), getattr(theirs, f"net{name}").state_dict(), f"original net{name}"
            )
        before = {name: state_of(getattr(ours, f"net{name}")) for name in NETS}
        data = make_batch(case.n_A, case.n_B, case.h, case.w, slots=20, seed=seed + 1, dtype=dtype)
        if case.full_pool:
            fill_pools(ours, theirs, 3 + case.ins_max, case.h, case.w, seed + 2, dtype)

        # test(): the sequential loop without gradients, at the initial weights (it changes no state).
        tested = {}
        for name, model in (("ours", ours), ("theirs", theirs)):
            np.random.seed(seed)  # --set_order random: both shuffle with NumPy's global generator, alike
            model.set_input(data)
            model.test()
            tested[name] = {v: getattr(model, v).detach().clone() for v in ours.visual_names}

        rec_theirs = record_original(theirs, {name: getattr(ours, f"net{name}") for name in NETS})
        rec_ours = record_ours(ours)
        for model in (theirs, ours):
            np.random.seed(seed)
            random.seed(seed)  # the image pools' choices, once they are full
            model.set_input(data)
            model.optimize_parameters()
    finally:
        torch.set_default_dtype(torch.float32)

    diffs = {
        k: Diff()
        for k in (
            "selected masks",
            "G outputs, step 1",
            "losses, step 1",
            "gradients, step 1",
            "G outputs, steps 2+",
            "losses, steps 2+",
            "gradients, steps 2+",
            "weights after",
            "update (after - before)",
            "reported losses",
            "visuals",
            "visuals, steps 2+",
            "test() visuals",
            "image pools after (as steps 2+)",
            "~0 grads of biases before IN [info]",
            "those biases after [info]",
            "update of those biases [info]",
        )
    }
    noise = {name: biases_before_instance_norm(getattr(ours, f"net{name}")) for name in NETS}
    masks = ours.get_instance_masks()
    diffs["selected masks"].add(masks["real_A"], theirs.real_A_segs, "real_A_segs")
    diffs["selected masks"].add(masks["real_B"], theirs.real_B_segs, "real_B_segs")
    if rec_ours.ran != rec_theirs.ran:
        notes.append(f"steps run differ: ours {rec_ours.ran} vs original {rec_theirs.ran}")
    for key in sorted(set(rec_ours.outputs) | set(rec_theirs.outputs)):
        if key in rec_ours.outputs and key in rec_theirs.outputs:
            diffs[f"G outputs, {'step 1' if key[0] == 0 else 'steps 2+'}"].add(
                rec_ours.outputs[key], rec_theirs.outputs[key], f"step {key[0] + 1} {key[1]}"
            )
        else:
            notes.append(f"output {key} only in {'ours' if key in rec_ours.outputs else 'the original'}")
    for key in sorted(set(rec_ours.losses) | set(rec_theirs.losses)):
        group = f"losses, {'step 1' if key[0] == 0 else 'steps 2+'}"
        if key in rec_ours.losses and key in rec_theirs.losses:
            diffs[group].add(rec_ours.losses[key], rec_theirs.losses[key], f"step {key[0] + 1} {key[1]}")
        elif ours.opt.lambda_idt == 0 and key[1].startswith("idt_") and key in rec_theirs.losses:
            # With --lambda_idt 0 ours skips the identity terms; the original computes them times 0.
            diffs[group].add(0.0, rec_theirs.losses[key], f"step {key[0] + 1} {key[1]} (ours: not computed)")
        else:
            notes.append(f"loss {key} only in {'ours' if key in rec_ours.losses else 'the original'}")
    for key in sorted(set(rec_ours.grads) | set(rec_theirs.grads)):
        if key in rec_ours.grads and key in rec_theirs.grads:
            group = (
                "~0 grads of biases before IN [info]"
                if key[2] in noise[key[1]]
                else f"gradients, {'step 1' if key[0] == 0 else 'steps 2+'}"
            )
            diffs[group].add(rec_ours.grads[key], rec_theirs.grads[key], f"step {key[0] + 1} {key[1]}.{key[2]}")
        else:
            notes.append(f"gradient {key} only in {'ours' if key in rec_ours.grads else 'the original'}")
    for name in NETS:
        net_ours = getattr(ours, f"net{name}")
        after_ours, after_theirs = state_of(net_ours), state_of(getattr(theirs, f"net{name}"), net_ours)
        if set(after_ours) != set(after_theirs):
            notes.append(f"net{name}: state_dict keys differ: {sorted(set(after_ours) ^ set(after_theirs))[:5]}")
        for key in sorted(set(after_ours) & set(after_theirs)):
            biased = key in noise[name]
            diffs["those biases after [info]" if biased else "weights after"].add(
                after_ours[key], after_theirs[key], f"{name}.{key}"
            )
            if key.endswith(("_u", "_v")):
                continue  # power-iteration vectors are not updated by Adam; their change is in 'weights after'
            group = "update of those biases [info]" if biased else "update (after - before)"
            diffs[group].add(
                after_ours[key] - before[name][key], after_theirs[key] - before[name][key], f"{name}.{key}"
            )
    if case.ins_max == case.ins_per:  # one step: ours (mean over steps) and the original (last step) report the same
        for name, value in ours.get_current_losses().items():
            diffs["reported losses"].add(value, theirs.get_current_losses()[name], name)
    skipped = not all(all(r) for r in rec_theirs.ran.values())
    for name in ours.visual_names:
        # After a skipped step the original's test() appends the previous step's masks again to its cycled
        # masks (ours: empty ones), so rec_*_seg differ there by design; everything else must agree.
        if not (skipped and name.startswith("rec_") and name.endswith("_seg")):
            diffs["test() visuals"].add(tested["ours"][name], tested["theirs"][name], name)
    for name in ("fake_A_pool", "fake_B_pool"):  # fakes of every step, so judged as values of steps 2+ are
        pool_ours, pool_theirs = getattr(ours, name).images, getattr(theirs, name).images
        if len(pool_ours) != len(pool_theirs):
            notes.append(f"{name}: {len(pool_ours)} images in ours, {len(pool_theirs)} in the original")
        for k, (a, b) in enumerate(zip(pool_ours, pool_theirs)):
            diffs["image pools after (as steps 2+)"].add(a, b, f"{name}[{k}]")
    if not skipped:  # the original's visuals reuse stale tensors after a skipped step
        for name in ours.visual_names:
            diffs["visuals" if case.ins_max == case.ins_per else "visuals, steps 2+"].add(
                getattr(ours, name), getattr(theirs, name), name
            )
    return {k: v for k, v in diffs.items() if v.n}, notes


def forward_check(
    original, dtype: torch.dtype, ngf: int = 64, h: int = 64, w: int = 64, seed: int = 0
) -> dict[str, Diff]:
    """G and D forward at the default width, on an image with 3 instances in 4 slots (one empty)."""
    from models.discriminators import define_D
    from models.generators import define_G

    net_mod = sys.modules[f"{_PKG}.models.networks"]
    diffs = {"G forward, ngf=64": Diff(), "D forward, ndf=64 (and its u, v)": Diff()}
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(seed)
        with contextlib.redirect_stdout(io.StringIO()):
            G_theirs = net_mod.define_G(3, 3, ngf, "set", "instance", False, "normal", 0.02, [])
            D_theirs = net_mod.define_D(3, ngf, "set", 3, "instance", False, "normal", 0.02, [])
        G_ours, D_ours = define_G(3, 3, ngf), define_D(3, ngf)
        load_state_dict_checked(G_ours, G_theirs.state_dict(), "original G")
        load_state_dict_checked(D_ours, D_theirs.state_dict(), "original D")
        data = make_batch(3, 3, h, w, slots=4, seed=seed + 7, dtype=dtype)
        x = torch.cat([data["A"], data["A_segs"]], 1)
        with torch.no_grad():
            diffs["G forward, ngf=64"].add(G_ours(x), G_theirs(x), "G(x)")
            for _ in range(2):  # twice: the second forward starts from the power iteration's first update
                diffs["D forward, ndf=64 (and its u, v)"].add(D_ours(x), D_theirs(x), "D(x)")
        sd_ours, sd_theirs = state_of(D_ours), state_of(D_theirs, D_ours)
        for key in sd_ours:
            diffs["D forward, ndf=64 (and its u, v)"].add(sd_ours[key], sd_theirs[key], key)
    finally:
        torch.set_default_dtype(torch.float32)
    return diffs


HEADER = f"{'case':<44} {'dtype':<8} {'quantity':<37} {'n':>4} {'max abs':>10} {'max rel':>10}  worst (largest rel)"


def judge(
    label: str,
    dtype: torch.dtype,
    diffs: dict[str, Diff],
    tolerances: dict[str, float | None],
    notes: list[str] = (),
    verbose: bool = False,
) -> tuple[bool, list[str]]:
    """The verdict on one case: True when every group passes its tolerance (None: not judged) with nothing broken
    and there are no ``notes`` (structural mismatches: steps, outputs or losses on one side only). Returns it with
    the report's lines, those that fail marked ``<-- FAIL``."""
    ok, lines, dname = not notes, [], str(dtype).replace("torch.", "")
    for quantity, d in diffs.items():
        tol = tolerances[quantity]
        passed = d.passes(tol)
        ok &= passed
        lines.append(
            f"{label:<44.44} {dname:<8} {quantity:<37.37} {d.n:>4} {d.abs:>10.3e} {d.rel:>10.3e}  "
            f"{d.worst}{'' if passed else '  <-- FAIL'}"
        )
        lines += [f"    {why}" for why in d.broken[1:]]
        if verbose and tol is not None:
            lines += [f"    {item}: abs {a:.3e} rel {r:.3e}" for item, a, r in d.items if r > tol]
    lines += [f"{label:<44.44} {dname:<8} NOTE: {note}  <-- FAIL" for note in notes]
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--original", type=Path, required=True, help="checkout of github.com/sangwoomo/instagan")
    parser.add_argument("--dtype", choices=("float64", "float32", "both"), default="both")
    parser.add_argument(
        "--adam04", action="store_true", help="also run the original with PyTorch 0.4's Adam update (informative)"
    )
    parser.add_argument("--no_forward64", action="store_true", help="skip the forward check at ngf = ndf = 64")
    parser.add_argument(
        "--no_sn_shim",
        action="store_true",
        help="run the original's SpectralNorm as today's PyTorch executes it (its backward then reads "
        "u and v overwritten by later forwards; see shim_spectral_norm)",
    )
    parser.add_argument("--verbose", action="store_true", help="list every item above the tolerance")
    parser.add_argument("--cases", type=str, default="", help="comma-separated case numbers (1-based); default all")
    args = parser.parse_args(argv)

    original = load_original(args.original)
    _SN_SHIM["on"] = not args.no_sn_shim
    torch.use_deterministic_algorithms(True)
    dtypes = [torch.float64, torch.float32] if args.dtype == "both" else [getattr(torch, args.dtype)]
    picked = [CASES[int(i) - 1] for i in args.cases.split(",") if i] if args.cases else CASES
    ok = True
    print(HEADER)
    print("-" * len(HEADER))
    for dtype in dtypes:
        runs = [(case, False) for case in picked] + ([(case, True) for case in picked] if args.adam04 else [])
        for case, adam04 in runs:
            diffs, notes = run_case(case, original, dtype, adam04)
            label = f"{case.name} {case.h}x{case.w}" + (" [orig: Adam 0.4]" if adam04 else "")
            # The Adam-0.4 runs are informative: nothing in them is judged, their notes are printed as they are.
            tols = dict.fromkeys(diffs) if adam04 else {q: tolerance(dtype, q) for q in diffs}
            passed, lines = judge(label, dtype, diffs, tols, [] if adam04 else notes, args.verbose)
            ok &= passed
            if adam04:
                lines += [f"{label:<44.44} {str(dtype).replace('torch.', ''):<8} NOTE: {note}" for note in notes]
            print("\n".join(lines))
        if not args.no_forward64:
            diffs = forward_check(original, dtype)
            passed, lines = judge(
                "forward, 64x64, 3 of 4 slots", dtype, diffs, dict.fromkeys(diffs, tolerance(dtype, "default"))
            )
            ok &= passed
            print("\n".join(lines))
    print("-" * len(HEADER))
    print("PASS: ours matches the original within the tolerances" if ok else "FAIL: see the lines marked FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

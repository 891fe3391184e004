"""Normalization layers, spectral normalization and weight initialization shared by the networks."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm, spectral_norm

NORM_LAYERS: dict[str, Callable[[int], nn.Module] | None] = {
    # CycleGAN's choices. Instance norm has no affine parameters and no running statistics.
    "instance": functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False),
    "batch": functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True),
    "none": None,
}

INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
SPECTRAL_NORMS = ("original", "torch")


def get_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """A constructor ``norm_layer(num_features)``; ``none`` gives an identity."""
    if norm not in NORM_LAYERS:
        raise ValueError(f"unknown --norm {norm!r}; choose one of {sorted(NORM_LAYERS)}")
    layer = NORM_LAYERS[norm]
    return layer if layer is not None else (lambda num_features: nn.Identity())


def uses_bias(norm: str) -> bool:
    """Convolutions followed by batch norm have no bias (the norm's shift replaces it), as in CycleGAN.

    CycleGAN only enabled biases for instance norm; with ``none`` it also left them off, and so do we.
    """
    return norm == "instance"


class _OriginalOrderSpectralNorm(_SpectralNorm):
    """torch's spectral norm with the power-iteration order of the 2018 code.

    torch updates ``u ← W v`` then ``v ← Wᵀ u`` and estimates ``σ = uᵀ W v``; the 2018 code (Miyato's reference
    implementation, via Christian Cosgrove's port) updates ``v ← Wᵀ u`` then ``u ← W v``, so ``σ = ‖W v‖``.
    Both are one step of the same power iteration, but the estimates differ until it converges, which changes
    every discriminator output of a fresh model. Parameter names and state_dict keys are torch's.
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # σ in float32 under --amp too (CUDA autocast would run the power iteration's mv in half precision).
        with torch.autocast(weight.device.type, enabled=False):
            if weight.ndim == 1 or self.n_power_iterations != 1:
                return super().forward(weight)
            return weight / self.sigma(weight)

    def sigma(self, weight: torch.Tensor) -> torch.Tensor:
        """The σ that ``forward`` divides ``weight`` by, with the same power step in training (so a call of this is
        a call of ``forward`` for u, v and σ). ``weight``: the unnormalized weight (``parametrizations.weight
        .original``)."""
        with torch.autocast(weight.device.type, enabled=False):
            weight_mat = self._reshape_weight_to_matrix(weight)
            if not self.training:  # torch's evaluation formula, with the stored u, v
                u = self._u.clone(memory_format=torch.contiguous_format)
                v = self._v.clone(memory_format=torch.contiguous_format)
                return torch.vdot(u, torch.mv(weight_mat, v))
            # One power step as in _power_method, with its last product W v kept in the graph: σ = uᵀ (W v) then
            # reuses it instead of recomputing W v (the same kernel on the same operands, so the same bits), which
            # saves one pass over W per call.
            with torch.no_grad():
                self._v = F.normalize(torch.mv(weight_mat.detach().H, self._u), dim=0, eps=self.eps, out=self._v)
            v = self._v.clone(memory_format=torch.contiguous_format)
            wv = torch.mv(weight_mat, v)
            with torch.no_grad():
                self._u = F.normalize(wv.detach(), dim=0, eps=self.eps, out=self._u)
            u = self._u.clone(memory_format=torch.contiguous_format)
            return torch.vdot(u, wv)

    @torch.no_grad()
    def _power_method(self, weight_mat: torch.Tensor, n_power_iterations: int) -> None:
        for _ in range(n_power_iterations):
            self._v = F.normalize(torch.mv(weight_mat.H, self._u), dim=0, eps=self.eps, out=self._v)
            self._u = F.normalize(torch.mv(weight_mat, self._v), dim=0, eps=self.eps, out=self._u)


def add_spectral_norm(module: nn.Module, kind: str = "original") -> nn.Module:
    """Spectral-normalize ``module.weight`` with one power iteration per forward in training mode."""
    if kind == "torch":
        return spectral_norm(module)
    if kind != "original":
        raise ValueError(f"unknown --spectral_norm {kind!r}; choose one of {SPECTRAL_NORMS}")
    parametrize.register_parametrization(module, "weight", _OriginalOrderSpectralNorm(module.weight, 1, 0, 1e-12))
    return module


@torch.no_grad()
def successive_power_steps(conv: nn.Module, calls: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The power steps of ``calls`` successive forwards of ``conv``'s spectral norm, made now (u, v updated in place,
    the same bits as those forwards): ``(U [out, calls], V [in, calls])``, column k the u, v with which call k
    computes σ_k = u_kᵀ W v_k. In evaluation mode no step is made and every column is the stored u, v. ``None`` if
    ``conv`` is not spectral-normalized."""
    if not _is_spectral_normalized(conv):
        return None
    normalize, weight = conv.parametrizations.weight[0], conv.parametrizations.weight.original
    with torch.autocast(weight.device.type, enabled=False):
        if not normalize.training:
            return normalize._u.clone()[:, None].expand(-1, calls), normalize._v.clone()[:, None].expand(-1, calls)
        weight_mat, us, vs = normalize._reshape_weight_to_matrix(weight), [], []
        for _ in range(calls):  # each kind's own order (_OriginalOrderSpectralNorm overrides _power_method)
            normalize._power_method(weight_mat, normalize.n_power_iterations)
            us.append(normalize._u.clone())
            vs.append(normalize._v.clone())
        return torch.stack(us, 1), torch.stack(vs, 1)


def successive_conv(
    conv: nn.Conv2d, x: torch.Tensor, calls: int, uv: tuple[torch.Tensor, torch.Tensor] | None
) -> torch.Tensor:
    """``calls`` successive forwards of ``conv`` at once: ``x: [calls * B, C, H, W]`` holds call k's input in rows
    ``k * B … (k + 1) * B - 1``; returns the outputs stacked the same way. ``uv``: ``successive_power_steps(conv,
    calls)``, the u, v of each call's spectral norm (``None`` without one).

    Call k's ``conv(x_k, W / σ_k) + b`` is computed as ``conv(x_k, W) / σ_k + b``: the same value up to rounding,
    but one convolution of the whole stack with one weight, and no pass over the weight per call (forward, and
    twice in backward: the classifier's weight has 8.4 M elements), only over the much smaller outputs. A pure
    function of ``x``, the parameters and ``uv``: it changes no state, so it can be compiled.
    """
    sn = uv is not None
    weight = conv.parametrizations.weight.original if sn else conv.weight
    normalize = conv.parametrizations.weight[0] if sn else None
    size = _output_size(x, conv)
    if (
        isinstance(normalize, _OriginalOrderSpectralNorm)
        and normalize.training
        and _as_matmul(conv, size)
        and not torch.is_autocast_enabled(x.device.type)
    ):
        out, sigmas = _matmul_conv_and_sigmas(x, weight, conv, *uv, size)
    else:
        out = _conv2d(x, weight, conv)
        sigmas = _sigmas(normalize, weight, *uv) if sn else None
    if sigmas is not None:
        out = out / sigmas.to(out.dtype).repeat_interleave(x.shape[0] // calls).view(-1, 1, 1, 1)
    return out if conv.bias is None else out + conv.bias.to(out.dtype).view(1, -1, 1, 1)


def _sigmas(normalize: _SpectralNorm, weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """σ_k = u_kᵀ W v_k for each column k of ``u: [out, K]``, ``v: [in, K]``, in float32 under autocast: the
    formula (and the kernels, so the bits) of a forward of the parametrization."""
    with torch.autocast(weight.device.type, enabled=False):
        weight_mat = normalize._reshape_weight_to_matrix(weight)
        cols = range(u.shape[1])
        return torch.stack([torch.vdot(u[:, k].contiguous(), torch.mv(weight_mat, v[:, k].contiguous())) for k in cols])


def _matmul_conv_and_sigmas(
    x: torch.Tensor, weight: torch.Tensor, conv: nn.Conv2d, u: torch.Tensor, v: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A small-output convolution (unfold + matmul) and σ_k = u_kᵀ W v_k of the power steps ``u: [out, K]``,
    ``v: [in, K]`` in one matrix product: ``W [cols | v_1 … v_K]`` gives the convolution and every W v_k, so the
    backward's one product ``dW = dY [cols | V]ᵀ`` also holds the σ terms ``Σ_k dσ_k u_k v_kᵀ``, which were
    otherwise one outer product and one accumulation of W's size (8.4 M elements for the classifier) per call."""
    n, pixels = x.shape[0], size[0] * size[1]
    cols = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # [N, C·kh·kw, h·w]
    cols = torch.cat([cols.transpose(0, 1).reshape(cols.shape[1], n * pixels), v.to(cols.dtype)], 1)
    y = weight.flatten(1) @ cols  # [O, N·h·w + K]
    sigmas = (u * y[:, n * pixels :]).sum(0)  # σ_k = u_kᵀ (W v_k)
    out = y[:, : n * pixels].view(-1, n, pixels).transpose(0, 1).reshape(n, -1, *size)
    return out, sigmas


# Below this many output pixels, a convolution runs as unfold + one matrix product: oneDNN's direct convolution
# reaches a quarter of its usual rate on the 7x7 outputs of D's classifier at 64x64 (docs/PERFORMANCE.md).
SMALL_OUTPUT_PIXELS = 64


def _output_size(x: torch.Tensor, conv: nn.Conv2d) -> tuple[int, int]:
    h, w = (
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, p, d, k, s in zip(x.shape[-2:], conv.padding, conv.dilation, conv.kernel_size, conv.stride)
    )
    return h, w


def _as_matmul(conv: nn.Conv2d, size: tuple[int, int]) -> bool:
    return conv.groups == 1 and conv.padding_mode == "zeros" and size[0] * size[1] <= SMALL_OUTPUT_PIXELS


def _conv2d(x: torch.Tensor, weight: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv``'s convolution of ``x`` with ``weight``, without bias (zero padding, as D's layers)."""
    h, w = _output_size(x, conv)
    if not _as_matmul(conv, (h, w)):
        return F.conv2d(x, weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    cols = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # [N, C·kh·kw, h·w]
    return torch.matmul(weight.flatten(1), cols).view(x.shape[0], -1, h, w)


def _is_spectral_normalized(module: nn.Module) -> bool:
    return parametrize.is_parametrized(module, "weight")


class FewOutputsConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same state_dict) for a convolution to a few output channels, such as the
    generators' last 7x7 convolution to 3 or 1 channels, where oneDNN's direct convolution runs at 5-20% of its
    usual rate on this CPU (docs/PERFORMANCE.md).

    ``y[o, h, w] = Σ_{i, j} z[(o, i, j), h + i, w + j] + b[o]`` with ``z = W' x`` one matrix product (``W'``: the
    weight as ``[O·kh·kw, C]``, one row per output channel and tap): the taps are summed through a strided view
    of ``z``. The same sums in another order. Stride 1, no padding, no dilation, one group, contiguous input;
    anything else runs ``nn.Conv2d``'s forward.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.stride != (1, 1)
            or self.dilation != (1, 1)
            or self.groups != 1
            or any(self.padding)
            or x.dim() != 4
            or not x.is_contiguous()
        ):
            return super().forward(x)
        n, c, hp, wp = x.shape
        o, _, kh, kw = self.weight.shape
        h, w = hp - kh + 1, wp - kw + 1
        taps = self.weight.permute(0, 2, 3, 1).reshape(o * kh * kw, c)
        # bmm of the expanded weight: torch.matmul would copy x into a transposed layout, forward and backward.
        z = torch.bmm(taps.expand(n, -1, -1), x.view(n, c, hp * wp)).view(n, o, kh, kw, hp, wp)
        sn, so, si, sj, sh, sw = z.stride()
        shifted = z.as_strided((n, o, h, w, kh, kw), (sn, so, sh, sw, si + sh, sj + sw))  # [..., i, j] at (h+i, w+j)
        y = shifted.sum((-2, -1))
        return y if self.bias is None else y + self.bias.to(y.dtype).view(1, -1, 1, 1)


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """CycleGAN's initialization: conv/linear weights from ``init_type``, biases 0, batch-norm scale N(1, gain).

    Spectral-normalized layers are initialized through their stored weight (``parametrizations.weight.original``).
    The 2018 code never reached those: its spectral-norm wrapper hid ``weight``, so its discriminators kept
    PyTorch's default init. ``define_D`` reproduces that unless asked otherwise.
    """
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown --init_type {init_type!r}; choose one of {INIT_TYPES}")

    def init_module(m: nn.Module) -> None:
        classname = m.__class__.__name__
        if ("Conv" in classname or "Linear" in classname) and hasattr(m, "weight"):
            weight = m.parametrizations.weight.original if _is_spectral_normalized(m) else m.weight
            with torch.no_grad():
                if init_type == "normal":
                    nn.init.normal_(weight, 0.0, init_gain)
                elif init_type == "xavier":
                    nn.init.xavier_normal_(weight, gain=init_gain)
                elif init_type == "kaiming":
                    nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
                else:
                    nn.init.orthogonal_(weight, gain=init_gain)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif "BatchNorm2d" in classname:
            nn.init.normal_(m.weight, 1.0, init_gain)
            nn.init.zeros_(m.bias)

    net.apply(init_module)
    return net


def count_parameters(net: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)

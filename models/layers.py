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
            if weight.ndim == 1 or not self.training or self.n_power_iterations != 1:
                return super().forward(weight)
            # One power step as in _power_method, with its last product W v kept in the graph: σ = uᵀ (W v) then
            # reuses it instead of recomputing W v (the same kernel on the same operands, so the same bits), which
            # saves one pass over W per call; the largest W (the classifier's, 33 MB) is read 2 times instead of 3.
            weight_mat = self._reshape_weight_to_matrix(weight)
            with torch.no_grad():
                self._v = F.normalize(torch.mv(weight_mat.detach().H, self._u), dim=0, eps=self.eps, out=self._v)
            v = self._v.clone(memory_format=torch.contiguous_format)
            wv = torch.mv(weight_mat, v)
            with torch.no_grad():
                self._u = F.normalize(wv.detach(), dim=0, eps=self.eps, out=self._u)
            u = self._u.clone(memory_format=torch.contiguous_format)
            return weight / torch.vdot(u, wv)

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


def successive_weights(conv: nn.Module, calls: int) -> torch.Tensor:
    """The weights that ``calls`` successive forwards of ``conv`` would use, concatenated along dim 0:
    ``[O, I, kh, kw] -> [calls * O, I, kh, kw]``. A spectral-normalized layer makes one power step per call in
    training, as those forwards would (same u, v, same σ, same numbers), so the calls can run as one grouped
    convolution."""
    if not _is_spectral_normalized(conv):
        return conv.weight.repeat(calls, 1, 1, 1)
    weight = conv.parametrizations.weight.original
    normalize = conv.parametrizations.weight[0]
    return torch.cat([normalize(weight) for _ in range(calls)])


def _is_spectral_normalized(module: nn.Module) -> bool:
    return parametrize.is_parametrized(module, "weight")


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

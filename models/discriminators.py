"""The set PatchGAN discriminator of InstaGAN (docs/DESIGN.md §1), spectral-normalized."""

from __future__ import annotations

import torch
import torch.nn as nn

from util.distributed import any_across_ranks

from .layers import (
    add_spectral_norm,
    get_norm_layer,
    init_weights,
    successive_conv,
    successive_power_steps,
    uses_bias,
)
from .masks import nonempty


class NLayerSetDiscriminator(nn.Module):
    """PatchGAN on an image and its set of instance masks. Input ``[B, input_nc + N, H, W]``, output
    ``[B, 1, h, w]`` scores (logits; probabilities with ``use_sigmoid``), about 70x70 receptive field each.

    ``feature_img`` and the shared ``feature_seg`` are the first ``n_layers`` stride-2 convolutions; the
    ``classifier`` (two stride-1 convolutions) sees ``[feature_img(x); Σ_i feature_seg(a_i)]`` where the sum runs
    over the non-empty masks of each sample. Every convolution is spectral-normalized. Module names and
    Sequential layouts are the 2018 code's, so its state_dicts map onto ours (see ``models.compat``).

    ``D([x_1, …, x_K])`` returns ``[D(x_1), …, D(x_K)]``: the same numbers as K calls one after the other (each
    spectral norm makes one power step per call, so call k is judged with the k-th normalized weight W / σ_k),
    computed as one convolution per layer: the K calls (and all instance slots of all calls in ``feature_seg``)
    are stacked along the batch, convolved with W, and call k's rows divided by σ_k. Instance norm acts per
    sample, so it is the same on the stack. Far fewer, larger operations than the 2018 code's one call per image
    and per mask.
    """

    always_use_all_params = False  # set under DDP: see ResnetSetGenerator

    def __init__(
        self,
        input_nc: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        use_sigmoid: bool = False,
        spectral_norm: str = "original",
    ):
        super().__init__()
        self.input_nc = input_nc
        self.grouped = norm in ("instance", "none")  # batch norm's statistics would mix the stacked calls
        self.feature_img = self._features(input_nc, ndf, n_layers, norm, spectral_norm)
        self.feature_seg = self._features(1, ndf, n_layers, norm, spectral_norm)
        self.dummy_size = 2 ** (n_layers + 1)  # the smallest input feature_seg takes (see forward)
        norm_layer = get_norm_layer(norm)
        width_in = 2 * ndf * min(2 ** (n_layers - 1), 8)  # [img; seg] features: 8ndf by default
        width = 2 * ndf * min(2**n_layers, 8)  # 16ndf by default (9.72 M parameters in all)
        layers = [
            add_spectral_norm(nn.Conv2d(width_in, width, 4, stride=1, padding=1), spectral_norm),
            norm_layer(width),
            nn.LeakyReLU(0.2),  # not in place after a norm: see models/generators.py
            add_spectral_norm(nn.Conv2d(width, 1, 4, stride=1, padding=1), spectral_norm),
        ]
        if use_sigmoid:
            layers.append(nn.Sigmoid())
        self.classifier = nn.Sequential(*layers)

    @staticmethod
    def _features(in_nc: int, ndf: int, n_layers: int, norm: str, sn: str) -> nn.Sequential:
        norm_layer, use_bias = get_norm_layer(norm), uses_bias(norm)
        layers = [add_spectral_norm(nn.Conv2d(in_nc, ndf, 4, stride=2, padding=1), sn), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                add_spectral_norm(nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=use_bias), sn),
                norm_layer(ndf * mult),
                nn.LeakyReLU(0.2),  # not in place after a norm: see models/generators.py
            ]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """``x: [B, input_nc + N, H, W]`` -> ``[B, 1, h, w]``; a list of such inputs -> the list of their outputs,
        as successive calls."""
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        for t in xs:
            if t.dim() != 4 or t.shape[1] < self.input_nc:
                raise ValueError(f"NLayerSetDiscriminator expects [B, {self.input_nc} + N, H, W], got {tuple(t.shape)}")
        if self.grouped and not self.always_use_all_params and len({(t.shape[0], *t.shape[2:]) for t in xs}) == 1:
            outs = self._forward_grouped(xs)
        else:
            outs = [self._forward_one(t) for t in xs]
        return outs if isinstance(x, (list, tuple)) else outs[0]

    def compile_layers(self, **options) -> None:
        """``torch.compile`` the layers of the three sub-networks (``--compile``); the power steps stay eager (see
        ``_run_stacked``), and so does the set logic around them, whose shapes depend on which masks are
        non-empty. The compiled function is a plain attribute: parameters and state_dict names do not change."""
        self._layers = torch.compile(self._layers, **options)

    def _run_stacked(self, net: nn.Sequential, x: torch.Tensor, calls: int) -> torch.Tensor:
        """``net`` applied in ``calls`` successive calls at once: ``x: [calls * B, C, H, W]`` holds call k's input
        in rows ``k * B … (k + 1) * B - 1``; returns ``[calls * B, C', h, w]`` likewise."""
        # The spectral norms' power steps of all calls first (they update u, v in place, which compiled autograd
        # rejects), then the layers as a pure function of x, the parameters and those u, v, compiled under
        # --compile. The same steps and numbers as one layer at a time.
        uvs = [successive_power_steps(layer, calls) if isinstance(layer, nn.Conv2d) else None for layer in net]
        return self._layers(net, x, calls, uvs)

    @staticmethod
    def _layers(net: nn.Sequential, x: torch.Tensor, calls: int, uvs: list) -> torch.Tensor:
        for layer, uv in zip(net, uvs):
            # Convolutions: call k's σ_k from its u, v (layers.successive_conv); instance norm, LeakyReLU, Sigmoid,
            # Identity act per sample.
            x = successive_conv(layer, x, calls, uv) if isinstance(layer, nn.Conv2d) else layer(x)
        return x

    def _forward_grouped(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        calls, nc, b = len(xs), self.input_nc, xs[0].shape[0]
        feat_img = self._run_stacked(self.feature_img, torch.cat([t[:, :nc] for t in xs]), calls)
        # feature_seg: one call per used slot of each input, in the order of the sequential calls.
        present = [nonempty(t[:, nc:]) for t in xs]  # [B, N] per input
        slots = [(k, i) for k, p in enumerate(present) for i in p.any(0).nonzero()[:, 0].tolist()]
        feat_sums = [torch.zeros_like(f) for f in feat_img.split(b)]
        if slots:
            masks = torch.cat([xs[k][:, nc + i : nc + i + 1] for k, i in slots])  # [S * B, 1, H, W]
            feats = self._run_stacked(self.feature_seg, masks, len(slots)).split(b)
            for (k, i), f in zip(slots, feats):  # the sequential path's sum, term by term
                feat_sums[k] = feat_sums[k] + f * present[k][:, i, None, None, None].to(f.dtype)
        joint = torch.cat([feat_img, torch.cat(feat_sums)], 1)  # [img_k; sum_k] per call
        return list(self._run_stacked(self.classifier, joint, calls).split(b))

    def _forward_one(self, x: torch.Tensor) -> torch.Tensor:
        """One call, one ``feature_seg`` call per used slot (DDP and batch norm use this path). Each network runs
        through ``_run_stacked`` with one call, so the numbers are those of the stacked path."""
        img, segs = x[:, : self.input_nc], x[:, self.input_nc :]
        present = nonempty(segs)  # [B, N]
        used = present.any(0)  # [N]: slots holding an instance in some sample
        if self.always_use_all_params:  # DDP: every rank makes the same feature_seg calls (see below)
            used = any_across_ranks(used)
        feat_img = self._run_stacked(self.feature_img, img, 1)
        feat_sum = torch.zeros_like(feat_img)
        # One feature_seg call per instance slot, as in the 2018 code. Each call is one power iteration of the
        # spectral norms in feature_seg, so u, v and every D output follow the original; a single batched call
        # would make one iteration instead of one per instance. A sample whose slot is empty adds nothing.
        for i in used.nonzero()[:, 0].tolist():
            f = self._run_stacked(self.feature_seg, segs[:, i : i + 1], 1)
            feat_sum = feat_sum + f * present[:, i, None, None, None].to(f.dtype)
        if not used.any() and self.always_use_all_params and self.training:
            # DDP, and no rank has a mask: a zero-weighted pass through feature_seg. It gives feature_seg's
            # parameters a (zero) gradient, so DDP reduces them as in any other step, and runs the power iteration
            # on every rank alike.
            dummy = segs.new_full((1, 1, self.dummy_size, self.dummy_size), -1.0)
            feat_sum = feat_sum + self._run_stacked(self.feature_seg, dummy, 1).sum() * 0.0
        return self._run_stacked(self.classifier, torch.cat([feat_img, feat_sum], dim=1), 1)


DISCRIMINATORS = {"set": NLayerSetDiscriminator}
D_INITS = ("pytorch", "same")


def define_D(
    input_nc: int,
    ndf: int,
    netD: str = "set",
    n_layers_D: int = 3,
    norm: str = "instance",
    use_sigmoid: bool = False,
    init_type: str = "normal",
    init_gain: float = 0.02,
    init_D: str = "pytorch",
    spectral_norm: str = "original",
) -> nn.Module:
    """``init_D='pytorch'`` keeps PyTorch's default init, what the 2018 code effectively did (docs/DESIGN.md §7);
    ``'same'`` applies ``init_type``/``init_gain`` as for the generators."""
    if netD not in DISCRIMINATORS:
        raise ValueError(f"unknown --netD {netD!r}; choose one of {sorted(DISCRIMINATORS)}")
    if init_D not in D_INITS:
        raise ValueError(f"unknown --init_D {init_D!r}; choose one of {D_INITS}")
    net = DISCRIMINATORS[netD](
        input_nc, ndf, n_layers_D, norm=norm, use_sigmoid=use_sigmoid, spectral_norm=spectral_norm
    )
    return init_weights(net, init_type, init_gain) if init_D == "same" else net

"""The set PatchGAN discriminator of InstaGAN (SPEC §1), spectral-normalized."""

from __future__ import annotations

import torch
import torch.nn as nn

from util.distributed import any_across_ranks

from .layers import add_spectral_norm, get_norm_layer, init_weights, uses_bias
from .masks import nonempty


class NLayerSetDiscriminator(nn.Module):
    """PatchGAN on an image and its set of instance masks. Input ``[B, input_nc + N, H, W]``, output
    ``[B, 1, h, w]`` scores (logits; probabilities with ``use_sigmoid``), about 70x70 receptive field each.

    ``feature_img`` and the shared ``feature_seg`` are the first ``n_layers`` stride-2 convolutions; the
    ``classifier`` (two stride-1 convolutions) sees ``[feature_img(x); Σ_i feature_seg(a_i)]`` where the sum runs
    over the non-empty masks of each sample. Every convolution is spectral-normalized. Module names and
    Sequential layouts are the 2018 code's, so its state_dicts map onto ours (see ``models.compat``).
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
        self.feature_img = self._features(input_nc, ndf, n_layers, norm, spectral_norm)
        self.feature_seg = self._features(1, ndf, n_layers, norm, spectral_norm)
        self.dummy_size = 2 ** (n_layers + 1)  # the smallest input feature_seg takes (see forward)
        norm_layer = get_norm_layer(norm)
        width_in = 2 * ndf * min(2 ** (n_layers - 1), 8)  # [img; seg] features: 8ndf by default
        width = 2 * ndf * min(2**n_layers, 8)  # 16ndf by default (9.72 M parameters in all)
        layers = [
            add_spectral_norm(nn.Conv2d(width_in, width, 4, stride=1, padding=1), spectral_norm),
            norm_layer(width),
            nn.LeakyReLU(0.2, True),
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
                nn.LeakyReLU(0.2, True),
            ]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] < self.input_nc:
            raise ValueError(f"NLayerSetDiscriminator expects [B, {self.input_nc} + N, H, W], got {tuple(x.shape)}")
        img, segs = x[:, : self.input_nc], x[:, self.input_nc :]
        present = nonempty(segs)  # [B, N]
        used = present.any(0)  # [N]: slots holding an instance in some sample
        if self.always_use_all_params:  # DDP: every rank makes the same feature_seg calls (see below)
            used = any_across_ranks(used)
        feat_img = self.feature_img(img)
        feat_sum = torch.zeros_like(feat_img)
        # One feature_seg call per instance slot, as in the 2018 code. Each call is one power iteration of the
        # spectral norms in feature_seg, so u, v and every D output follow the original; a single batched call
        # would make one iteration instead of one per instance. A sample whose slot is empty adds nothing.
        for i in used.nonzero()[:, 0].tolist():
            f = self.feature_seg(segs[:, i : i + 1])
            feat_sum = feat_sum + f * present[:, i, None, None, None].to(f.dtype)
        if not used.any() and self.always_use_all_params and self.training:
            # DDP, and no rank has a mask: a zero-weighted pass through feature_seg. It gives feature_seg's
            # parameters a (zero) gradient, so DDP reduces them as in any other step, and runs the power iteration
            # on every rank alike.
            dummy = segs.new_full((1, 1, self.dummy_size, self.dummy_size), -1.0)
            feat_sum = feat_sum + self.feature_seg(dummy).sum() * 0.0
        return self.classifier(torch.cat([feat_img, feat_sum], dim=1))


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
    """``init_D='pytorch'`` keeps PyTorch's default init, which is what the 2018 code effectively did (SPEC §1);
    ``'same'`` applies ``init_type``/``init_gain`` as for the generators."""
    if netD not in DISCRIMINATORS:
        raise ValueError(f"unknown --netD {netD!r}; choose one of {sorted(DISCRIMINATORS)}")
    if init_D not in D_INITS:
        raise ValueError(f"unknown --init_D {init_D!r}; choose one of {D_INITS}")
    net = DISCRIMINATORS[netD](
        input_nc, ndf, n_layers_D, norm=norm, use_sigmoid=use_sigmoid, spectral_norm=spectral_norm
    )
    return init_weights(net, init_type, init_gain) if init_D == "same" else net

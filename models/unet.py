"""pix2pix's U-Net (Isola et al. 2017), as the InstaGAN authors used it to predict masks (paper §3.1).

The encoder halves the resolution ``downs`` times with 4x4 stride-2 convolutions (LeakyReLU 0.2), the decoder
doubles it back with 4x4 stride-2 transposed convolutions (ReLU) and concatenates the encoder's feature map of
the same size at every level (the skip connections). pix2pix's rules are kept: no normalization on the first
encoder layer, on the innermost one nor on the output; filters double per level up to ``8 * ngf``.

Any input size works: the image is padded (by reflection) to a multiple of ``2 ** downs`` and the output cropped
back. The network remembers the size it was trained at (the ``train_size`` buffer, saved in its checkpoint), so a
predictor can resize other images to it (``models/predictors.py``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import get_norm_layer, init_weights, uses_bias


class _Level(nn.Module):
    """One resolution level: down, the inner levels (or nothing), up; returns ``cat(x, up(...))``."""

    def __init__(
        self,
        outer: int,
        inner: int,
        sub: nn.Module | None,
        norm: str,
        outermost: bool = False,
        in_channels: int | None = None,
        out_channels: int | None = None,
    ):
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), uses_bias(norm)
        innermost = sub is None
        down = [nn.Conv2d(in_channels or outer, inner, 4, 2, 1, bias=bias)]
        if not outermost:
            down.insert(0, nn.LeakyReLU(0.2, True))
            if not innermost:
                down.append(norm_layer(inner))
        up_in = inner if innermost else inner * 2
        up = [nn.ReLU(True), nn.ConvTranspose2d(up_in, out_channels or outer, 4, 2, 1, bias=outermost or bias)]
        if not outermost:
            up.append(norm_layer(outer))
        self.outermost = outermost
        self.down, self.sub, self.up = nn.Sequential(*down), sub or nn.Identity(), nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.sub(self.down(x)))
        return y if self.outermost else torch.cat([x, y], dim=1)


class UNet(nn.Module):
    """``x: [B, in_channels, H, W]`` in [-1, 1] → ``[B, out_channels, H, W]`` logits (any H, W).

    ``train_size`` ([2]: height, width; 0 until set) is the image size of the training data.
    """

    def __init__(
        self, in_channels: int = 3, out_channels: int = 2, ngf: int = 16, downs: int = 4, norm: str = "instance"
    ):
        super().__init__()
        if downs < 2:
            raise ValueError(f"the U-Net needs at least 2 levels (--unet_downs), got {downs}")
        self.downs = downs
        width = [min(ngf * 2**i, ngf * 8) for i in range(downs)]  # filters of each level's down convolution
        level = _Level(width[-2], width[-1], None, norm)
        for i in range(downs - 2, 0, -1):
            level = _Level(width[i - 1], width[i], level, norm)
        self.body = _Level(
            ngf, width[0], level, norm, outermost=True, in_channels=in_channels, out_channels=out_channels
        )
        self.register_buffer("train_size", torch.zeros(2, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2**self.downs
        ph, pw = -h % m, -w % m
        if ph or pw:  # reflection needs the padding below the side length; replicate covers tiny images
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return self.body(x)[..., :h, :w]


def define_unet(
    in_channels: int,
    out_channels: int,
    ngf: int,
    downs: int,
    norm: str,
    init_type: str = "normal",
    init_gain: float = 0.02,
) -> UNet:
    return init_weights(UNet(in_channels, out_channels, ngf, downs, norm), init_type, init_gain)

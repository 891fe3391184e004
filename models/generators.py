"""The set generator of InstaGAN (docs/DESIGN.md §1): an image and a set of instance masks in, both translated out."""

from __future__ import annotations

import torch
import torch.nn as nn

from util.distributed import zero_touch

from .layers import FewOutputsConv2d, get_norm_layer, init_weights, uses_bias
from .masks import nonempty

# The ReLUs after a norm layer are not in place (CycleGAN's were): instance norm returns a view of its result, and an
# in-place op on a view makes autograd copy the whole gradient of its base in backward (CopySlices), once per layer.
# The same values.


class ResnetBlock(nn.Module):
    """``x + conv_block(x)``: two reflect-padded 3x3 convolutions (CycleGAN's block, same Sequential layout)."""

    def __init__(self, dim: int, norm_layer, use_dropout: bool, use_bias: bool):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm_layer(dim), nn.ReLU()]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def resnet_encoder(
    in_nc: int, ngf: int, norm_layer, use_dropout: bool, n_blocks: int, use_bias: bool, n_down: int = 2
) -> nn.Sequential:
    """7x7 conv, ``n_down`` stride-2 3x3 convs, ``n_blocks`` ResNet blocks.

    ``[B, in_nc, H, W] -> [B, 4ngf, H/4, W/4]``."""
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7, bias=use_bias), norm_layer(ngf), nn.ReLU()]
    for i in range(n_down):
        mult = 2**i
        layers += [
            nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias),
            norm_layer(ngf * mult * 2),
            nn.ReLU(),
        ]
    layers += [ResnetBlock(ngf * 2**n_down, norm_layer, use_dropout, use_bias) for _ in range(n_blocks)]
    return nn.Sequential(*layers)


def resnet_decoder(out_nc: int, ngf: int, norm_layer, use_bias: bool, n_up: int = 2) -> nn.Sequential:
    """Two stride-2 transposed convs halving channels, 7x7 conv, tanh: ``[B, 4ngf, h, w] -> [B, out_nc, 4h, 4w]``.

    ``ngf`` is the width after upsampling; the input has ``ngf * 2**n_up`` channels.
    """
    layers: list[nn.Module] = []
    for i in range(n_up):
        mult = 2 ** (n_up - i)
        layers += [
            nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias),
            norm_layer(ngf * mult // 2),
            nn.ReLU(),
        ]
    layers += [nn.ReflectionPad2d(3), FewOutputsConv2d(ngf, out_nc, 7), nn.Tanh()]  # an nn.Conv2d, faster
    return nn.Sequential(*layers)


class ResnetSetGenerator(nn.Module):
    """InstaGAN's generator (docs/DESIGN.md §1). Input ``[B, input_nc + N, H, W]``: the image, then N instance slots.

    Output ``[B, output_nc + N, H, W]`` in [-1, 1]: the translated image, then one translated mask per slot; an
    empty slot (all -1) is passed through unchanged. H and W must be multiples of 4.

    The set feature ``s`` sums ``encoder_seg`` over the non-empty masks *of each sample*, so the output does not
    depend on the order of the instances nor on the other samples of the batch. (The 2018 code summed over the
    batch as well, which was only right for batch 1; with batch 1 the numbers are the same.) A sample with no
    instance gets ``s = 0``: its image is translated on its own.

    ``always_use_all_params`` (set under DDP) makes a batch without any instance still give the mask branch a
    (zero) gradient, so every rank reduces the same parameters; the output is unchanged.
    """

    always_use_all_params = False

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
    ):
        super().__init__()
        self.input_nc, self.output_nc = input_nc, output_nc
        norm_layer, use_bias = get_norm_layer(norm), uses_bias(norm)
        self.encoder_img = resnet_encoder(input_nc, ngf, norm_layer, use_dropout, n_blocks, use_bias)
        self.encoder_seg = resnet_encoder(1, ngf, norm_layer, use_dropout, n_blocks, use_bias)
        self.decoder_img = resnet_decoder(output_nc, 2 * ngf, norm_layer, use_bias)  # in: [enc_img; s] = 8ngf
        self.decoder_seg = resnet_decoder(1, 3 * ngf, norm_layer, use_bias)  # in: [enc_seg; enc_img; s] = 12ngf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] < self.input_nc or x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(
                f"ResnetSetGenerator expects [B, {self.input_nc} + N, H, W] with H, W multiples of 4, "
                f"got {tuple(x.shape)}"
            )
        img, segs = x[:, : self.input_nc], x[:, self.input_nc :]
        slots = nonempty(segs).nonzero(as_tuple=True)  # (sample, slot) of the K non-empty masks, row-major
        sample_of = slots[0]  # [K]: the sample each non-empty mask belongs to

        enc_img = self.encoder_img(img)  # [B, 4ngf, h, w]
        enc_sum = torch.zeros_like(enc_img)
        out_segs = segs
        if sample_of.numel() > 0:
            # All non-empty masks of the batch go through the shared encoder and decoder in one call each.
            enc_segs = self.encoder_seg(segs[slots].unsqueeze(1))  # [K, 4ngf, h, w]
            enc_sum = enc_sum.index_add(0, sample_of, enc_segs)  # s per sample
            dec = self.decoder_seg(torch.cat([enc_segs, enc_img[sample_of], enc_sum[sample_of]], dim=1))
            out_segs = segs.index_put(slots, dec[:, 0].to(segs.dtype))  # [K, 1, H, W] into the slots
        # Outputs in the input's dtype (float32 under autocast too), so losses and the image pool stay float32.
        out_img = self.decoder_img(torch.cat([enc_img, enc_sum], dim=1)).to(img.dtype)
        if sample_of.numel() == 0 and self.always_use_all_params and torch.is_grad_enabled():
            out_img = out_img + zero_touch(self.encoder_seg, self.decoder_seg)  # DDP: see util.distributed
        return torch.cat([out_img, out_segs], dim=1)


GENERATORS = {"set": ResnetSetGenerator}


def define_G(
    input_nc: int,
    output_nc: int,
    ngf: int,
    netG: str = "set",
    norm: str = "instance",
    use_dropout: bool = False,
    init_type: str = "normal",
    init_gain: float = 0.02,
    n_blocks: int = 9,
) -> nn.Module:
    """``n_blocks``: ResNet blocks in each encoder (9, the paper's; fewer for small images such as the toy's)."""
    if netG not in GENERATORS:
        raise ValueError(f"unknown --netG {netG!r}; choose one of {sorted(GENERATORS)}")
    if n_blocks < 0:
        raise ValueError(f"--n_blocks must be 0 or more, got {n_blocks}")
    net = GENERATORS[netG](input_nc, output_nc, ngf, norm=norm, use_dropout=use_dropout, n_blocks=n_blocks)
    return init_weights(net, init_type, init_gain)

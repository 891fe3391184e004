"""CycleGAN's networks (Zhu et al. 2017), the baseline of the InstaGAN paper: a ResNet generator and a PatchGAN
discriminator on images alone, no instance masks.

Both keep CycleGAN's single ``self.model`` Sequential, with the layers in CycleGAN's order, so the state_dict names
(``model.10.conv_block.1.weight`` ...) are those of CycleGAN's and the 2018 InstaGAN repository's checkpoints.
The generator is built from the same blocks as InstaGAN's ``encoder_img``/``decoder_img`` (``models.generators``),
so the two models differ only in what the paper adds: the mask branch and the set feature.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .generators import resnet_decoder, resnet_encoder
from .layers import add_spectral_norm, get_norm_layer, init_weights, uses_bias

# --netG: CycleGAN's names with a fixed number of blocks, and the 2018 InstaGAN repository's 'basic' (its ResNet
# generator for --model cycle_gan), which here takes its block count from --n_blocks (9 by default, as there).
RESNET_GENERATORS = {"resnet_9blocks": 9, "resnet_6blocks": 6, "basic": None}
# --netD: 'basic' is the 3-layer PatchGAN, 'n_layers' takes --n_layers_D (CycleGAN's names).
PATCH_DISCRIMINATORS = ("basic", "n_layers")
# Spectral norm on D: CycleGAN had none; the 2018 InstaGAN repository's PatchGAN had it on every conv ('original').
D_SPECTRAL_NORMS = ("none", "original", "torch")


class ResnetGenerator(nn.Module):
    """``[B, input_nc, H, W] -> [B, output_nc, H, W]`` in [-1, 1]; H and W multiples of 4.

    7x7 conv, two stride-2 convs, ``n_blocks`` ResNet blocks at 4ngf, two transposed convs, 7x7 conv, tanh.
    """

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
        if n_blocks < 0:
            raise ValueError(f"--n_blocks must be 0 or more, got {n_blocks}")
        self.input_nc, self.output_nc = input_nc, output_nc
        norm_layer, use_bias = get_norm_layer(norm), uses_bias(norm)
        encoder = resnet_encoder(input_nc, ngf, norm_layer, use_dropout, n_blocks, use_bias)
        decoder = resnet_decoder(output_nc, ngf, norm_layer, use_bias)
        self.model = nn.Sequential(*encoder, *decoder)  # one Sequential: CycleGAN's layer indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_nc or x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(
                f"ResnetGenerator expects [B, {self.input_nc}, H, W] with H, W multiples of 4, got {tuple(x.shape)}"
            )
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """CycleGAN's PatchGAN: ``[B, input_nc, H, W] -> [B, 1, h, w]`` scores, a 70x70 receptive field each with
    ``n_layers=3``. ``n_layers`` stride-2 4x4 convs (norm after all but the first), a stride-1 conv with norm, and
    a stride-1 conv to one channel; LeakyReLU 0.2; a sigmoid at the end only with ``use_sigmoid`` (``--no_lsgan``).
    """

    def __init__(
        self,
        input_nc: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        use_sigmoid: bool = False,
        spectral_norm: str = "none",
    ):
        super().__init__()
        if spectral_norm not in D_SPECTRAL_NORMS:
            raise ValueError(f"unknown --spectral_norm {spectral_norm!r}; choose one of {D_SPECTRAL_NORMS}")
        if n_layers < 1:
            raise ValueError(f"--n_layers_D must be 1 or more, got {n_layers}")
        self.input_nc = input_nc
        norm_layer, use_bias = get_norm_layer(norm), uses_bias(norm)

        def conv(c_in: int, c_out: int, stride: int, bias: bool = True) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=bias)
            return layer if spectral_norm == "none" else add_spectral_norm(layer, spectral_norm)

        layers = [conv(input_nc, ndf, 2), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [conv(ndf * prev, ndf * mult, 2, use_bias), norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [conv(ndf * prev, ndf * mult, 1, use_bias), norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(conv(ndf * mult, 1, 1))
        if use_sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise ValueError(f"NLayerDiscriminator expects [B, {self.input_nc}, H, W], got {tuple(x.shape)}")
        return self.model(x)


def define_resnet_G(
    input_nc: int,
    output_nc: int,
    ngf: int,
    netG: str = "resnet_9blocks",
    norm: str = "instance",
    use_dropout: bool = False,
    init_type: str = "normal",
    init_gain: float = 0.02,
    n_blocks: int = 9,
) -> nn.Module:
    """``netG``: ``resnet_9blocks``, ``resnet_6blocks`` or ``basic`` (``n_blocks`` blocks)."""
    if netG not in RESNET_GENERATORS:
        raise ValueError(f"--model cycle_gan: unknown --netG {netG!r}; choose one of {sorted(RESNET_GENERATORS)}")
    blocks = RESNET_GENERATORS[netG]
    if blocks is not None and n_blocks not in (9, blocks):  # 9 is --n_blocks's default: not a request
        raise ValueError(
            f"--n_blocks {n_blocks} contradicts --netG {netG} ({blocks} blocks); use --netG basic "
            f"--n_blocks {n_blocks} for another number of blocks"
        )
    net = ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks if blocks is None else blocks)
    return init_weights(net, init_type, init_gain)


def define_patch_D(
    input_nc: int,
    ndf: int,
    netD: str = "basic",
    n_layers_D: int = 3,
    norm: str = "instance",
    use_sigmoid: bool = False,
    init_type: str = "normal",
    init_gain: float = 0.02,
    spectral_norm: str = "none",
) -> nn.Module:
    """``netD``: ``basic`` (3 layers) or ``n_layers`` (``n_layers_D``). Initialized like the generators, as in
    CycleGAN (its D had no wrapper hiding the weights from the initializer)."""
    if netD not in PATCH_DISCRIMINATORS:
        raise ValueError(f"--model cycle_gan: unknown --netD {netD!r}; choose one of {list(PATCH_DISCRIMINATORS)}")
    n_layers = 3 if netD == "basic" else n_layers_D
    net = NLayerDiscriminator(input_nc, ndf, n_layers, norm, use_sigmoid, spectral_norm)
    return init_weights(net, init_type, init_gain)

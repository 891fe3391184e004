"""Losses of InstaGAN (docs/DESIGN.md §2). Each returns a scalar tensor; the model does backward and step.

Every loss takes an optional per-sample ``weight: [B]``. The loss is the mean over each sample's elements, then
``Σ_b weight_b · loss_b / B``: samples with weight 0 (an empty instance group at this step) contribute nothing,
and B ranks of batch 1 average to the same gradient as one process with batch B. Without a weight this is the
plain mean, as in the 2018 code.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .masks import background_weight

GAN_MODES = ("lsgan", "vanilla")


def _full_precision(x: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors (from ``--amp``) to float32 before a reduction; float32 and float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _reduce(elementwise: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    elementwise = _full_precision(elementwise)
    if weight is None:
        return elementwise.mean()
    per_sample = elementwise.flatten(1).mean(1)
    return (per_sample * weight.to(per_sample.dtype)).sum() / per_sample.shape[0]


class GANLoss(nn.Module):
    """LSGAN (MSE to 1 for real, 0 for fake) or, with ``vanilla``, binary cross-entropy on the discriminator's
    probabilities (the 2018 code's ``--no_lsgan``: a sigmoid ends D and BCE follows)."""

    def __init__(self, gan_mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan mode {gan_mode!r}; choose one of {GAN_MODES}")
        self.gan_mode = gan_mode
        self.real_label, self.fake_label = real_label, fake_label

    def forward(self, prediction: torch.Tensor, target_is_real: bool, weight: torch.Tensor | None = None):
        """``prediction: [B, 1, h, w]`` from D; returns a scalar."""
        # In float32, outside autocast: CUDA autocast refuses binary_cross_entropy, and half-precision squares of
        # D's scores lose digits. A no-op without --amp.
        with torch.autocast(prediction.device.type, enabled=False):
            prediction = _full_precision(prediction)
            target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
            if self.gan_mode == "lsgan":
                elementwise = F.mse_loss(prediction, target, reduction="none")
            else:
                elementwise = F.binary_cross_entropy(prediction, target, reduction="none")
            return _reduce(elementwise, weight)


def l1_loss(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference over image and mask channels together (cycle and identity losses)."""
    return _reduce((x - y).abs(), weight)


def context_loss(
    x: torch.Tensor, y: torch.Tensor, masks_x: torch.Tensor, masks_y: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Context-preserving loss: mean of ``w ⊙ |x − y|`` over the image channels, where ``w`` is 1 on pixels that
    are background in both the input masks and the translated masks and 0 elsewhere.

    ``x, y: [B, C, H, W]`` input and translated images; ``masks_x, masks_y: [B, N, H, W]``. ``w`` is not
    detached, so the loss also pushes on the translated masks, as in the 2018 code.
    """
    return _reduce(background_weight(masks_x, masks_y) * (x - y).abs(), weight)

"""Instance-mask helpers: select, merge, split, find empty slots.

Masks live in [-1, 1]: +1 on the instance, -1 on background; an absent instance slot is -1 everywhere.
Shapes: ``masks: [B, N, H, W]``, one channel per instance slot.
"""

from __future__ import annotations

import numpy as np
import torch

SET_ORDERS = ("decreasing", "random", "given")


def nonempty(masks: torch.Tensor) -> torch.Tensor:
    """``[B, N, H, W] -> [B, N]`` bool, True where a slot holds an instance (any pixel above -1)."""
    return (masks + 1).flatten(2).sum(-1) > 0


def select_masks(masks: torch.Tensor, ins_max: int, order: str = "decreasing") -> torch.Tensor:
    """Keep ``ins_max`` slots per sample: ``[B, N, H, W] -> [B, ins_max, H, W]``.

    ``decreasing`` orders the instances by area, largest first (empty slots last). ``random`` takes the same
    largest ``ins_max`` instances and shuffles the non-empty ones with NumPy's global generator, as the 2018
    code did. ``given`` keeps the slots as they come, empty ones included (scripts/translate_video.py keeps each
    tracked instance in its slot). Missing slots (N < ins_max) are filled with empty masks.
    """
    if order not in SET_ORDERS:
        raise ValueError(f"unknown --set_order {order!r}; choose one of {SET_ORDERS}")
    b, n, h, w = masks.shape
    if n < ins_max:
        masks = torch.cat([masks, masks.new_full((b, ins_max - n, h, w), -1.0)], dim=1)
    if order == "given":
        return masks[:, :ins_max]
    area = (masks + 1).flatten(2).mean(-1)  # [B, N]
    # A stable sort keeps equal-area instances in file order; the 2018 code's topk left ties unspecified.
    index = torch.sort(area, dim=1, descending=True, stable=True).indices[:, :ins_max]
    if order == "random":
        count = (area > 0).sum(1).clamp(max=ins_max).tolist()
        index = torch.stack(
            [
                idx[torch.from_numpy(np.concatenate([np.random.permutation(k), np.arange(k, ins_max)]))]
                for idx, k in zip(index, count)
            ]
        )
    return torch.gather(masks, 1, index[:, :, None, None].expand(-1, -1, h, w))


def merge_masks(masks: torch.Tensor) -> torch.Tensor:
    """Union of the instances as one mask: ``[B, N, H, W] -> [B, 1, H, W]`` in [-1, 1]."""
    return (((masks + 1) / 2).sum(1, keepdim=True)).clamp(0, 1) * 2 - 1


def background_weight(*mask_sets: torch.Tensor) -> torch.Tensor:
    """1 where a pixel is background in every given mask set, 0 on any instance: ``[B, 1, H, W]``."""
    return (1 - merge_masks(torch.cat(mask_sets, dim=1))) / 2


def split(x: torch.Tensor, image_nc: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, C + N, H, W] -> ([B, C, H, W], [B, N, H, W])``: image channels first, then one per instance."""
    return x[:, :image_nc], x[:, image_nc:]

"""What a translation kept and what it changed, pixel by pixel and mask by mask.

Images are ``[N, 3, H, W]`` in [-1, 1]; instance masks ``[N, K, H, W]`` in [-1, 1] (> 0 on the instance, an empty
slot all -1), slot k of the translated masks being the translation of slot k of the input masks. Pixel errors are
on the [0, 1] scale (|fake − real| / 2) and PSNR has peak 1, so a copy of the input scores L1 = 0 and PSNR = inf.

- background: the pixels outside every input mask and every translated mask, which the context-preserving loss
  asks the generator to keep (docs/DESIGN.md; paper, section 2.2);
- foreground: the pixels inside the input masks, where the translation should change the image;
- mask change, per instance (input slot non-empty): IoU of the input and the translated mask; area as a fraction of
  the image; aspect, the bounding box's height / width; extent, area / bounding-box area (a disc ≈ π/4 ≈ 0.785,
  an axis-aligned square 1.0). Each ``*_change`` is the mean over instances of (translated − input); aspect and
  extent skip instances whose translated mask is empty (IoU and area count them, as 0 and as a full loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


def binarize(masks: torch.Tensor) -> torch.Tensor:
    """``[N, K, H, W]`` in [-1, 1] (or bool) -> bool, True on the instance."""
    return masks if masks.dtype == torch.bool else masks > 0


def union(masks: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """``[N, K, H, W]`` -> ``[N, 1, H, W]`` bool: any instance; all False when ``masks`` is None or has no slot."""
    if masks is None or masks.shape[1] == 0:
        return torch.zeros(like.shape[0], 1, *like.shape[2:], dtype=torch.bool, device=like.device)
    return binarize(masks).any(dim=1, keepdim=True)


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]; inf for identical images."""
    return math.inf if mse <= 0 else -10.0 * math.log10(mse)


def box_geometry(mask: torch.Tensor) -> tuple[float, float, float] | None:
    """One ``[H, W]`` bool mask -> (area / (H·W), bounding-box height / width, area / bounding-box area); None when
    empty."""
    area = int(mask.sum())
    if area == 0:
        return None
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    h = int(rows[-1] - rows[0]) + 1
    w = int(cols[-1] - cols[0]) + 1
    return area / mask.numel(), h / w, area / (h * w)


@dataclass
class RegionError:
    """Sums of |fake − real| and (fake − real)² over a region, accumulated over batches ([0, 1] scale)."""

    abs_sum: float = 0.0
    sq_sum: float = 0.0
    count: int = 0  # pixels × channels

    def add(self, real: torch.Tensor, fake: torch.Tensor, region: torch.Tensor) -> None:
        """``real, fake: [N, C, H, W]`` in [-1, 1]; ``region: [N, 1, H, W]`` bool."""
        diff = ((fake.float() - real.float()) / 2).masked_select(region.expand_as(real))
        self.abs_sum += float(diff.abs().sum(dtype=torch.float64))
        self.sq_sum += float(diff.square().sum(dtype=torch.float64))
        self.count += diff.numel()

    def l1(self) -> float | None:
        return self.abs_sum / self.count if self.count else None

    def psnr(self) -> float | None:
        """PSNR of the mean squared error over all the region's pixels of all images (one inf image does not make
        the whole set inf, as a mean of per-image PSNRs would)."""
        return psnr(self.sq_sum / self.count) if self.count else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class MaskChange:
    """Per-instance comparison of input and translated masks, accumulated over batches."""

    iou: list[float] = field(default_factory=list)
    area: list[float] = field(default_factory=list)
    aspect: list[float] = field(default_factory=list)
    extent: list[float] = field(default_factory=list)
    vanished: int = 0  # instances whose translated mask is empty

    def add(self, masks_in: torch.Tensor, masks_out: torch.Tensor) -> None:
        """``masks_in, masks_out: [N, K, H, W]``, slot-aligned; slots beyond the shorter one count as empty."""
        masks_in, masks_out = binarize(masks_in).cpu(), binarize(masks_out).cpu()
        for n in range(masks_in.shape[0]):
            for k in range(masks_in.shape[1]):
                before = box_geometry(masks_in[n, k])
                if before is None:
                    continue
                out = masks_out[n, k] if k < masks_out.shape[1] else torch.zeros_like(masks_in[n, k])
                after = box_geometry(out)
                inter = int((masks_in[n, k] & out).sum())
                uni = int((masks_in[n, k] | out).sum())
                self.iou.append(inter / uni)
                self.area.append((after[0] if after else 0.0) - before[0])
                if after is None:
                    self.vanished += 1
                    continue
                self.aspect.append(after[1] - before[1])
                self.extent.append(after[2] - before[2])

    def result(self) -> dict:
        return {
            "mask_iou": _mean(self.iou),
            "area_change": _mean(self.area),
            "aspect_change": _mean(self.aspect),
            "extent_change": _mean(self.extent),
            "num_instances": len(self.iou),
            "vanished_instances": self.vanished,
        }

"""Instance masks from a predicted union mask, and matching instances between two sets of masks.

``split_instances(union, core)`` turns a predicted foreground (the union of the instances) into instance masks:

1. *Seeds*: the connected components (4-connected) of ``core``, the predicted interiors: each instance eroded by
   a few pixels (``--erode``), so that two instances that touch along a boundary have separate interiors. Without
   ``core``, the seeds are the components of ``union`` itself.
2. *Growing*: each seed grows back into ``union`` one pixel per step (label propagation), so the pixels between two
   touching instances go to the nearer seed.
3. Parts of ``union`` that no seed reaches (a thin part whose interior vanished) are instances of their own.
4. Instances under ``min_area`` pixels are dropped; the rest are ordered by decreasing area (InstaGAN's order).

What it does not do: instances that overlap over more than about twice the erosion depth (one instance largely
hiding another, or two merged blobs with one common interior) stay one instance, and a single instance whose
interior falls apart into two pieces (a narrow waist) becomes two. No learning is involved in this step.

Everything runs in torch on the device of the inputs; masks are bool ``[H, W]`` tensors.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _neighbour_max(labels: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` → the maximum over each pixel and its 4 neighbours (zero padding)."""
    padded = F.pad(labels[None, None].float(), (1, 1, 1, 1))[0, 0]
    stack = torch.stack([padded[1:-1, 1:-1], padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
    return stack.amax(0).to(labels.dtype)


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """4-connected components of a bool ``[H, W]`` mask → (labels ``[H, W]`` int64 in 0..n, 0 = background, n).

    Label propagation: every pixel starts with its own number and takes its neighbours' maximum until nothing
    changes (as many steps as the longest path inside a component).
    """
    if mask.dim() != 2:
        raise ValueError(f"connected_components expects one [H, W] mask, got shape {tuple(mask.shape)}")
    mask = mask.bool()
    h, w = mask.shape
    labels = torch.where(mask, torch.arange(1, h * w + 1, device=mask.device).view(h, w), 0)
    while True:
        grown = torch.where(mask, _neighbour_max(labels), 0)
        if torch.equal(grown, labels):
            break
        labels = grown
    values = torch.unique(labels)
    values = values[values > 0]
    relabel = torch.zeros(h * w + 1, dtype=torch.long, device=mask.device)
    relabel[values] = torch.arange(1, len(values) + 1, device=mask.device)
    return relabel[labels], len(values)


def grow_seeds(seeds: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Grow labelled ``seeds`` (``[H, W]`` int, 0 = none) into the bool ``region``, one pixel per step, until no
    unlabelled pixel of ``region`` touches a label. Where two fronts meet, the larger label wins the tie."""
    labels = torch.where(region, seeds, 0)
    while True:
        free = region & (labels == 0)
        grown = torch.where(free, _neighbour_max(labels), labels)
        if torch.equal(grown, labels):
            return labels
        labels = grown


def split_instances(
    union: torch.Tensor, core: torch.Tensor | None = None, min_area: int = 16, min_seed_area: int | None = None
) -> list[torch.Tensor]:
    """Bool ``union [H, W]`` (and ``core [H, W]``, see the module docstring) → instance masks, each bool
    ``[H, W]``, disjoint, largest first; instances under ``min_area`` pixels dropped."""
    union = union.bool()
    if core is None:
        labels, n = connected_components(union)
    else:
        seed_labels, n = connected_components(core.bool() & union)
        min_seed = max(1, min_area // 4) if min_seed_area is None else min_seed_area
        if n:  # drop speck seeds: each would claim a piece of its neighbour
            areas = torch.bincount(seed_labels.flatten(), minlength=n + 1)
            keep = areas >= min_seed
            keep[0] = False
            seed_labels = torch.where(keep[seed_labels], seed_labels, 0)
        labels = grow_seeds(seed_labels, union)
        rest, m = connected_components(union & (labels == 0))  # parts no seed reached
        labels = torch.where(rest > 0, rest + n, labels)
        n += m
    if n == 0:
        return []
    areas = torch.bincount(labels.flatten(), minlength=n + 1)[1:]
    order = torch.argsort(areas, descending=True, stable=True).tolist()
    return [labels == i + 1 for i in order if int(areas[i]) >= min_area]


def order_by_area(masks: list) -> list:
    """Masks (bool arrays or tensors) sorted by decreasing area, ties kept in their order."""
    areas = [int(m.sum()) for m in masks]
    return [masks[i] for i in sorted(range(len(masks)), key=lambda i: -areas[i])]


def iou_matrix(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """``[len(a), len(b)]`` IoU between two lists of bool ``[H, W]`` arrays of one size."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    fa = np.stack([m.reshape(-1) for m in a]).astype(np.float32)
    fb = np.stack([m.reshape(-1) for m in b]).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` by decreasing IoU, each row and column used once, IoU ≥ ``threshold`` (> 0)."""
    pairs, used_i, used_j = [], set(), set()
    flat = np.argsort(-iou, axis=None, kind="stable")
    for i, j in zip(*np.unravel_index(flat, iou.shape)):
        if iou[i, j] < threshold or iou[i, j] <= 0:
            break
        if i not in used_i and j not in used_j:
            pairs.append((int(i), int(j)))
            used_i.add(i)
            used_j.add(j)
    return pairs


def union_iou(pred: np.ndarray, real: np.ndarray) -> tuple[int, int]:
    """(intersection, union) pixel counts of two bool arrays (the IoU is their ratio; both empty: 0, 0)."""
    return int((pred & real).sum()), int((pred | real).sum())


class InstanceTracker:
    """Keeps each instance of a video in one slot: ``slots = tracker.update(masks)``.

    ``update`` takes a frame's instance masks (bool ``[H, W]`` arrays, any order) and returns a list of
    ``num_slots`` entries, each the mask of the instance that holds that slot or None. An instance takes the
    slot of the previous frames' instance it overlaps most (IoU ≥ ``threshold``, matched greedily); a new one
    takes the lowest free slot. A slot stays reserved for ``patience`` frames after its instance was last seen
    (occlusion, a missed detection); then it is freed. Instances beyond ``num_slots`` are dropped (``dropped``
    counts them).
    """

    def __init__(self, num_slots: int, threshold: float = 0.2, patience: int = 5):
        self.num_slots, self.threshold, self.patience = num_slots, threshold, patience
        self.last: list[np.ndarray | None] = [None] * num_slots  # the slot's last seen mask
        self.missing = [0] * num_slots  # frames since it was seen
        self.next_id = 0
        self.ids: list[int | None] = [None] * num_slots  # a track number per slot, for reports
        self.dropped = 0

    def update(self, masks: list[np.ndarray]) -> list[np.ndarray | None]:
        live = [s for s in range(self.num_slots) if self.last[s] is not None]
        iou = iou_matrix([self.last[s] for s in live], list(masks))
        slots: list[np.ndarray | None] = [None] * self.num_slots
        taken = set()
        for i, j in greedy_match(iou, self.threshold):
            slots[live[i]] = masks[j]
            taken.add(j)
        new = sorted((j for j in range(len(masks)) if j not in taken), key=lambda j: -int(masks[j].sum()))
        for j in new:
            free = [s for s in range(self.num_slots) if self.last[s] is None and slots[s] is None]
            if not free:
                self.dropped += 1
                continue
            slots[free[0]] = masks[j]
            self.ids[free[0]] = self.next_id
            self.next_id += 1
        for s in range(self.num_slots):
            if slots[s] is not None:
                self.last[s], self.missing[s] = slots[s], 0
            elif self.last[s] is not None:
                self.missing[s] += 1
                if self.missing[s] > self.patience:
                    self.last[s], self.ids[s] = None, None
        return slots

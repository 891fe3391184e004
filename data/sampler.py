"""A sampler whose order is a function of (seed, epoch) only, so a run resumed mid-epoch reads the same batches.

torch's ``RandomSampler`` draws each epoch's permutation from a generator that advances from epoch to epoch, and
the per-sample augmentation draws from whichever global generator the worker holds: neither can be restored to
the middle of an epoch. Here epoch ``e`` is ``randperm(n)`` seeded with ``(seed, e)``; each index is yielded
together with its own sample seed, drawn from ``(seed, e, index)``, which the dataset uses for the unpaired B
image and the random crop and flip. A resumed run calls ``set_epoch(e)`` then ``skip(k)`` and gets exactly the
samples an uninterrupted run would have read after its first ``k``, with any number of workers.

Under torch.distributed each rank takes every ``num_replicas``-th sample of the padded order, like
``DistributedSampler``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (NumPy's SeedSequence: well mixed, so (1, 2) and (2, 1) differ)."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2, np.uint64)[0] >> 1)


class ResumableSampler(Sampler):
    """Yields ``(index, sample_seed)`` pairs; see the module docstring."""

    def __init__(self, length: int, shuffle: bool = True, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        if length < 1:
            raise ValueError("ResumableSampler needs a non-empty dataset")
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.per_rank = math.ceil(length / num_replicas)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s order and read it from the beginning."""
        self.epoch = epoch
        self.start = 0

    def skip(self, samples: int) -> None:
        """Leave out the first ``samples`` samples of this rank's share of the current epoch."""
        if not 0 <= samples <= self.per_rank:
            raise ValueError(f"cannot skip {samples} samples of an epoch of {self.per_rank}")
        self.start = samples

    def order(self) -> list[int]:
        """This rank's indices for the current epoch, in reading order (the skipped ones included)."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        total = self.per_rank * self.num_replicas
        order += order[: total - len(order)]  # pad so that every rank reads as many samples
        return order[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.order()[self.start :]:
            yield index, derive_seed(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return self.per_rank - self.start

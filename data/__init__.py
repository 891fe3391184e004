"""Dataset registry and data loaders."""

from __future__ import annotations

import signal

import torch
from torch.utils.data import DataLoader, Dataset

from util.distributed import get_rank, get_world_size

from .sampler import ResumableSampler
from .unaligned_seg_dataset import UnalignedSegDataset

DATASETS: dict[str, type[Dataset]] = {"unaligned_seg": UnalignedSegDataset}


def get_dataset_class(name: str) -> type[Dataset]:
    if name not in DATASETS:
        raise ValueError(f"unknown --dataset_mode {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def get_option_setter(name: str):
    return get_dataset_class(name).modify_commandline_options


def create_dataset(opt) -> Dataset:
    return get_dataset_class(opt.dataset_mode)(opt)


def create_dataloader(opt, dataset: Dataset, device: torch.device | None = None, seed: int = 0) -> DataLoader:
    """A loader of ``--batch_size`` (split over the ranks under torchrun). Shuffles unless ``--serial_batches``.

    The order is ``ResumableSampler``'s: a function of (seed, epoch), so a resumed run reads the same batches (call
    ``set_epoch`` each epoch). Under torch.distributed each rank reads its own shard of it, like ``DistributedSampler``.
    """
    world = get_world_size()
    if opt.batch_size % world:
        raise ValueError(f"--batch_size {opt.batch_size} must be divisible by the number of processes ({world})")
    sampler = ResumableSampler(
        len(dataset), shuffle=not opt.serial_batches, seed=seed, num_replicas=world, rank=get_rank()
    )
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=opt.batch_size // world,
        sampler=sampler,
        num_workers=opt.num_threads,
        pin_memory=device is not None and device.type == "cuda",
        persistent_workers=opt.num_threads > 0,
        generator=generator,
        worker_init_fn=_ignore_stop_signals,
    )


def _ignore_stop_signals(worker_id: int) -> None:
    """Ctrl-C reaches the whole process group: workers must not die of it before the main process has saved
    'latest' (training/session.py). They still exit with the main process, which they watch."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

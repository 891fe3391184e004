"""Dataset registry and data loaders."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from util.distributed import get_rank, get_world_size

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

    Under torch.distributed each rank reads its own shard (``DistributedSampler``; call ``set_epoch`` each epoch).
    """
    world = get_world_size()
    if opt.batch_size % world:
        raise ValueError(f"--batch_size {opt.batch_size} must be divisible by the number of processes ({world})")
    shuffle = not opt.serial_batches
    sampler = None
    if world > 1:
        sampler = torch.utils.data.DistributedSampler(
            dataset, num_replicas=world, rank=get_rank(), shuffle=shuffle, seed=seed
        )
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=opt.batch_size // world,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=opt.num_threads,
        pin_memory=device is not None and device.type == "cuda",
        persistent_workers=opt.num_threads > 0,
        generator=generator,
    )

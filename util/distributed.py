"""Distributed helpers that do nothing on a single process, so training code has no ``if ddp:`` branches."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_dist():
        dist.barrier()


def _collective_device() -> torch.device:
    # nccl reduces CUDA tensors only; gloo reduces CPU tensors.
    if is_dist() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_across_ranks(flags: torch.Tensor) -> torch.Tensor:
    """Element-wise OR of a bool tensor over all ranks (a no-op on one process). Returns a CPU bool tensor.

    Used for decisions that change control flow, such as skipping a step: every rank must take the same branch,
    or the ranks that run a backward pass wait forever for the ones that skipped it.
    """
    flags = flags.detach().to(torch.int32)
    if is_dist():
        flags = flags.to(_collective_device())
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags.cpu().bool()


def reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """Average scalars over ranks (for logging); returns the input on one process."""
    if not is_dist() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel (or DataParallel) wrapper, or ``net`` itself."""
    return net.module if isinstance(net, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)) else net

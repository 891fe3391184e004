"""Distributed helpers that do nothing on a single process, so training code has no ``if ddp:`` branches.

Three ways to run ``train.py``:

- ``python train.py ...``: one process (``--gpu_ids 0``, or ``-1`` for the CPU).
- ``torchrun --nproc_per_node=N train.py ...``: N DistributedDataParallel workers, one per GPU (nccl), or N CPU
  workers (gloo) with ``--gpu_ids -1``. Multi-node: the same command on every node with
  ``--nnodes=M --node_rank=i --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT --rdzv_id=JOB``.
- ``python train.py --gpu_ids 0,1,2,3 ...`` (the 2018 spelling): ``launch_if_multi_gpu`` starts the same DDP
  workers through torch's own launcher API (``torch.distributed.launcher.elastic_launch``, what torchrun uses),
  one per listed GPU. ``INSTAGAN_CPU_WORKERS=1`` makes it start gloo CPU workers instead when no GPU is present
  (for tests).

``--batch_size`` is always the global batch; each rank reads ``batch_size / world`` images of its own shard.
"""

from __future__ import annotations

import os
import random
import uuid
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


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
    keys = list(values)  # the same order on every rank (loss_names)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= get_world_size()
    return type(values)((k, float(v)) for k, v in zip(keys, t.tolist()))


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel (or DataParallel) wrapper, or ``net`` itself."""
    return net.module if isinstance(net, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)) else net


# ------------------------------------------------------------------ process setup


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch_if_multi_gpu(entry: Callable[[list[str]], None], argv: list[str], gpu_ids: list[int]) -> bool:
    """``--gpu_ids 0,1,...`` outside torchrun: run ``entry(argv)`` in one DDP worker per listed GPU, through
    torch's elastic launcher (the engine behind torchrun), and wait for them. Returns False, launching nothing,
    when already inside a worker, with fewer than two GPU ids, or when CUDA is absent (then one process trains on
    the CPU) unless ``INSTAGAN_CPU_WORKERS=1`` asks for gloo CPU workers. ``entry`` must be importable (spawn)."""
    if "RANK" in os.environ or len(gpu_ids) < 2:
        return False
    if not torch.cuda.is_available() and os.environ.get("INSTAGAN_CPU_WORKERS") != "1":
        return False
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=len(gpu_ids),
        run_id=f"instagan-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # a free port, as torchrun --standalone does
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    elastic_launch(config, entry)(argv)
    return True


def init_distributed(opt, resolve_device: Callable) -> torch.device:
    """Join the process group when started by torchrun (or ``launch_if_multi_gpu``) and return this rank's
    device; on one process, just ``resolve_device(opt)``.

    Under DDP, rank ``LOCAL_RANK`` takes ``--gpu_ids[LOCAL_RANK]`` when the list names a GPU per local worker, and
    ``cuda:LOCAL_RANK`` otherwise (so the default ``--gpu_ids 0`` works with torchrun). nccl on CUDA; gloo on the
    CPU (``--gpu_ids -1``, or no GPU present).
    """
    if not launched_by_torchrun():
        return resolve_device(opt)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if opt.gpu_ids and torch.cuda.is_available():
        gpu = opt.gpu_ids[local_rank] if len(opt.gpu_ids) >= local_world else local_rank
        torch.cuda.set_device(gpu)
        device, backend = torch.device("cuda", gpu), "nccl"
    else:
        if opt.gpu_ids and local_rank == 0:
            warnings.warn(
                "--gpu_ids asked for CUDA, but no GPU is available: DDP workers use the CPU (gloo)", stacklevel=2
            )
        device, backend = torch.device("cpu"), "gloo"
        if "OMP_NUM_THREADS" not in os.environ:  # share the cores between the local workers
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    dist.init_process_group(backend)
    return device


def cleanup() -> None:
    if is_dist():
        dist.barrier()
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every device) with ``seed``; NumPy takes its low 32 bits."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_per_rank(seed: int) -> None:
    """After the networks are built from the common seed: give each rank its own stream for data order,
    augmentation and the image pool. Does nothing on one process, so single-process runs are unchanged."""
    if get_world_size() > 1:
        seed_everything(seed + get_rank())


def wrap_model(model, device: torch.device) -> None:
    """Wrap every network of ``model`` (``model.net<name>``) in DistributedDataParallel; no-op on one process.

    Call after loading weights and after ``--compile``. Why plain DDP is correct with this model:

    - G_A and G_B are each called several times before one backward (G(x), G_back(G(x)), identity). DDP
      (``find_unused_parameters=False``) supports that: every forward re-arms the same reducer, and each parameter's
      gradient hook fires once per backward, after autograd has summed its uses. ``find_unused_parameters=True``
      would break this (the last forward's graph walk would mark parameters used earlier as unused), and
      ``static_graph`` does not fit a graph that changes with the instances.
    - Every parameter of a called network must receive a gradient on every rank. A rank whose images have no
      instance in a step would leave ``encoder_seg``/``decoder_seg`` (``feature_seg`` in D) out of its graph, so the
      networks add an exact zero that touches those parameters (``always_use_all_params``); the sum is unchanged.
    - Which networks run at a step is all-reduced in ``set_input``, so every rank calls the same DDP modules the
      same number of times; G's loss calls D unwrapped (its parameters are frozen there).
    - ``broadcast_buffers=False``: the only buffers are spectral norm's u and v (and batch-norm statistics with
      ``--norm batch``); DDP broadcasts them once at construction, and since every rank updates them from the
      same weights with the same ops, they stay equal without a broadcast (a collective) in every forward.
    """
    if not is_dist():
        return
    for name in model.model_names:
        net = getattr(model, f"net{name}")
        net.always_use_all_params = True
        ids = [device.index] if device.type == "cuda" else None
        setattr(model, f"net{name}", DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False))


def zero_touch(*modules: torch.nn.Module) -> torch.Tensor:
    """An exact zero that depends on every parameter of ``modules``: added to an output, it gives those parameters a
    zero gradient without changing any value, so DDP sees them used (see ``wrap_model``)."""
    params = [p.reshape(-1)[:1] for m in modules for p in m.parameters() if p.requires_grad]
    if not params:
        return torch.zeros(())
    return torch.cat(params).sum() * 0.0


def print_main(*args, **kwargs) -> None:
    """``print`` on the main process only."""
    if is_main_process():
        print(*args, **kwargs)

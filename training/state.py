"""The full training state: everything ``--continue_train`` needs to go on exactly where a run stopped.

``checkpoints/<name>/latest_state.pth`` (and ``<epoch>_state.pth`` with ``--keep_epoch_state``) holds, in one
file written atomically: the networks, optimizers and learning-rate schedulers, the image pools, the position
(epoch, batches done in it, total_iters), the random states (Python, NumPy, torch, CUDA; the data order is a
function of (seed, epoch), see ``data/sampler.py``), the samples skipped as bad, and the resolved options.
Everything in it is a tensor, a number, a string or a list/tuple/dict of those, so ``torch.load(weights_only=True)``
reads it. The network-only files ``<epoch>_net_G_A.pth`` are written beside it, as before, for ``test.py``
(``util/checkpoint.py`` writes and reads both kinds of file).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from util.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from util.distributed import is_dist

STATE_FORMAT = "instagan-training-state"
STATE_VERSION = 1
# Options that may change between a run and its continuation without being listed: those that say what to resume,
# and those that change neither the numbers nor the files. Every other change is listed when the run resumes.
RESUME_OPTIONS = {
    "continue_train",
    "epoch_count",
    "epoch",
    "load_iter",
    "verbose",
    "display_id",
    "display_server",
    "display_port",
    "display_env",
    "num_threads",
    "gpu_ids",
}


def state_path(save_dir: str | Path, tag: int | str) -> Path:
    return Path(save_dir) / f"{tag}_state.pth"


# ------------------------------------------------------------------------------------------------- random state


def rng_state() -> dict:
    """Python, NumPy, torch and (when initialized) CUDA random states, as tensors and plain numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": _python_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def _python_state() -> tuple:
    version, internal, gauss = random.getstate()  # internal: 625 ints below 2**32, kept as one tensor
    return version, torch.tensor(internal, dtype=torch.int64), gauss


def gather_rank_states(model) -> list[dict]:
    """What differs between ranks, in rank order: the random state and, under torch.distributed, the image pools
    (each rank fills its own from its own fakes). A collective under torch.distributed: call it on every rank."""
    state = {"rng": rng_state()}
    if not is_dist():
        return [state]
    state["pools"] = {name: pool.state_dict() for name, pool in model.pools().items()}
    states: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(states, state)
    return states


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(x) for x in internal.tolist()), gauss))
    n = state["numpy"]
    keys = n["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        saved = [s.cpu() for s in state["cuda"]]
        if len(saved) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(saved)
        else:  # another number of GPUs: restore the ones both runs have
            for i, s in enumerate(saved[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(s, i)


def configure_determinism(deterministic: bool) -> None:
    """``--deterministic``: deterministic algorithms (cuDNN included). On the CPU this makes a resumed run equal an
    uninterrupted one bit for bit. Some CUDA kernels (reflection-pad backward) have no deterministic version: they
    warn instead of failing, so GPU runs are as reproducible as those kernels allow."""
    if not deterministic:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


# ----------------------------------------------------------------------------------------------------- options


def options_dict(opt) -> dict:
    """The resolved options as JSON types (what ``train_opt.json`` holds)."""
    return json.loads(json.dumps(vars(opt), default=str))


def option_changes(saved: dict, opt) -> list[str]:
    """``name: old -> new`` for each option that differs from the checkpoint's (ignoring ``RESUME_OPTIONS``)."""
    now = options_dict(opt)
    return [
        f"--{k}: {saved.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(saved) | set(now))
        if k not in RESUME_OPTIONS and saved.get(k) != now.get(k)
    ]


# --------------------------------------------------------------------------------------------------- save, load


def save_training_state(model, opt, position: dict, tag: int | str = "latest", ranks: list[dict] | None = None) -> Path:
    """Write ``<tag>_state.pth`` atomically. ``position``: ``epoch``, ``batches_done``, ``epoch_iter``,
    ``total_iters`` and the bad-sample bookkeeping; ``ranks``: every rank's ``gather_rank_states`` entry, by default
    this process's random state. Call on the main process only."""
    ranks = ranks or [{"rng": rng_state()}]
    state = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "torch_version": str(torch.__version__),
        **position,
        **model.training_state_dict(),
        "rng": ranks[0]["rng"],
        "ranks": ranks,
        "options": options_dict(opt),
    }
    path = state_path(model.save_dir, tag)
    write_checkpoint(state, path)
    return path


def load_training_state(path: str | Path, device: torch.device | str = "cpu") -> dict:
    state = read_checkpoint(path, device)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(
            f"{path} is not a training state of this code (no '{STATE_FORMAT}' marker); "
            "resume from the network files with --continue_train after moving it away"
        )
    if state.get("version", 0) > STATE_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer version of this code (state version "
            f"{state['version']} > {STATE_VERSION}); update the code to resume it"
        )
    return state

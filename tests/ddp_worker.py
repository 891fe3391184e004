"""One training batch in float64, on one process or under torchrun; used by tests/test_ddp.py.

    python tests/ddp_worker.py OUT.pt <train options>                                  # one process
    torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py OUT.pt <train options>  # DDP on gloo

Builds the model as train.py does (same seed on every rank, DDP wrapping), converts the networks and the batch to
float64, runs one ``optimize_parameters`` (every sequential step: G and D updates), and writes, from rank 0, the
generators' outputs on a fixed input and the losses averaged over ranks. In float64 the DDP run must equal the
single process to ~1e-12; in float32, Adam turns float noise in near-zero gradients into lr-sized steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data import create_dataloader, create_dataset  # noqa: E402
from models import create_model  # noqa: E402
from options.base_options import resolve_device  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402
from util import distributed as dist_util  # noqa: E402


def fixed_input(h: int, w: int) -> torch.Tensor:
    """Three images with 0, 1 and 3 instances in 3 slots: ``[3, 6, h, w]`` float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 6, h, w, generator=g, dtype=torch.float64) * 2 - 1
    x[:, 3:] = -1
    x[1, 3, 4:20, 6:30] = 1
    for k in range(3):
        x[2, 3 + k, 2 + 8 * k : 10 + 8 * k, 4 : 20 + 5 * k] = 1
    return x


def main(out: str, argv: list[str]) -> None:
    torch.set_num_threads(1)
    opt = TrainOptions().parse(argv)
    device = dist_util.init_distributed(opt, resolve_device)
    dist_util.seed_everything(opt.seed)
    loader = create_dataloader(opt, create_dataset(opt), device, seed=opt.seed)
    loader.sampler.set_epoch(1)
    model = create_model(opt, device)
    for name in model.model_names:
        getattr(model, f"net{name}").double()
    dist_util.wrap_model(model, device)
    dist_util.seed_per_rank(opt.seed)
    data = next(iter(loader))
    data = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in data.items()}
    model.set_input(data)
    model.optimize_parameters()
    losses = dist_util.reduce_mean(model.get_current_losses())
    x = fixed_input(opt.fineSizeH, opt.fineSizeW)
    with torch.no_grad():
        outputs = {name: dist_util.unwrap(getattr(model, f"net{name}"))(x) for name in ("G_A", "G_B")}
    if dist_util.is_main_process():
        torch.save({"outputs": outputs, "losses": dict(losses)}, out)
    dist_util.cleanup()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

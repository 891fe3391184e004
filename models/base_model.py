"""CycleGAN's model interface: ``set_input / forward / optimize_parameters / test`` and the three name lists."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn as nn

from util.distributed import unwrap
from util.util import atomic_torch_save

from .compat import load_state_dict_checked
from .schedulers import get_scheduler


class BaseModel:
    """Subclasses fill ``loss_names`` (read as ``self.loss_<name>``), ``visual_names`` (``self.<name>``) and
    ``model_names`` (``self.net<name>``), and define ``set_input``, ``optimize_parameters`` and ``test``."""

    def __init__(self, opt, device: torch.device):
        self.opt = opt
        self.device = device
        self.isTrain = opt.isTrain
        self.save_dir = Path(opt.checkpoints_dir) / opt.name
        self.loss_names: list[str] = []
        self.model_names: list[str] = []
        self.visual_names: list[str] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list = []
        self.image_paths: list[str] = []

    @staticmethod
    def modify_commandline_options(parser, is_train: bool):
        return parser

    def set_input(self, data: dict) -> None:
        raise NotImplementedError

    def optimize_parameters(self) -> None:
        raise NotImplementedError

    def test(self) -> None:
        raise NotImplementedError

    def networks(self) -> dict[str, nn.Module]:
        return {name: getattr(self, f"net{name}") for name in self.model_names}

    def setup(self, opt) -> None:
        """Schedulers for training; weights from ``opt.epoch`` for testing or ``--continue_train``."""
        if self.isTrain:
            self.schedulers = [get_scheduler(optimizer, opt) for optimizer in self.optimizers]
        if not self.isTrain or opt.continue_train:
            self.load_networks(f"iter_{opt.load_iter}" if opt.load_iter > 0 else opt.epoch)

    def eval(self) -> None:
        for net in self.networks().values():
            net.eval()

    def train(self) -> None:
        for net in self.networks().values():
            net.train()

    def update_learning_rate(self) -> float:
        for scheduler in self.schedulers:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(0)  # CycleGAN stepped the plateau policy with a constant metric
            else:
                scheduler.step()
        return self.optimizers[0].param_groups[0]["lr"]

    def get_current_visuals(self) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict((name, getattr(self, name)) for name in self.visual_names if hasattr(self, name))

    def get_current_losses(self) -> OrderedDict[str, float]:
        return OrderedDict((name, float(getattr(self, f"loss_{name}"))) for name in self.loss_names)

    def get_image_paths(self) -> list[str]:
        return self.image_paths

    def network_path(self, epoch: int | str, name: str) -> Path:
        return self.save_dir / f"{epoch}_net_{name}.pth"

    def save_networks(self, epoch: int | str) -> None:
        """``<epoch>_net_<name>.pth``: the unwrapped state_dict on the CPU, written atomically."""
        for name, net in self.networks().items():
            state = {k: v.detach().cpu() for k, v in unwrap(net).state_dict().items()}
            atomic_torch_save(state, self.network_path(epoch, name))

    def load_networks(self, epoch: int | str) -> None:
        for name, net in self.networks().items():
            path = self.network_path(epoch, name)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found: no checkpoint '{epoch}' for network {name} of experiment "
                    f"'{self.opt.name}' in {self.save_dir}. Check --name, --checkpoints_dir and --epoch."
                )
            try:
                state = torch.load(path, map_location=self.device, weights_only=True)
            except Exception as e:
                raise RuntimeError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
            load_state_dict_checked(unwrap(net), state, str(path))

    def print_networks(self, verbose: bool = False) -> str:
        lines = ["---------- Networks initialized -------------"]
        for name, net in self.networks().items():
            if verbose:
                lines.append(str(net))
            n = sum(p.numel() for p in unwrap(net).parameters() if p.requires_grad)
            lines.append(f"[Network {name}] Total number of parameters : {n / 1e6:.3f} M")
        lines.append("-----------------------------------------------")
        return "\n".join(lines)

    @staticmethod
    def set_requires_grad(nets: list[nn.Module], requires_grad: bool) -> None:
        for net in nets:
            for param in net.parameters():
                param.requires_grad_(requires_grad)

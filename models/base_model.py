"""CycleGAN's model interface: ``set_input / forward / optimize_parameters / test`` and the three name lists."""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn as nn

from util.checkpoint import checkpoint_tag, read_checkpoint, write_checkpoint
from util.distributed import any_across_ranks, unwrap

from .compat import load_state_dict_checked
from .image_pool import ImagePool
from .schedulers import get_scheduler


class NonFiniteLossError(FloatingPointError):
    """A loss is NaN or infinite; raised before the optimizer step it would have spoiled."""

    def __init__(self, names: list[str], step: int | None = None):
        self.names, self.step = names, step
        where = f" at sequential step {step + 1}" if step is not None else ""
        super().__init__(f"non-finite loss {', '.join(names)}{where}")


def raise_if_nonfinite(losses: dict[str, torch.Tensor | float], step: int | None = None) -> None:
    """Raise ``NonFiniteLossError`` naming the NaN/inf ones among ``losses`` (0-dim tensors or numbers). One device
    sync; the decision is all-reduced, so every rank raises together (naming "(on another rank)" where its own
    losses are finite) and no rank waits in a backward pass the others skip."""
    if not losses:
        return
    values = [v.detach().float().reshape(()) if torch.is_tensor(v) else torch.tensor(float(v)) for v in losses.values()]
    device = next((v.device for v in values if v.device.type != "cpu"), torch.device("cpu"))
    finite = torch.stack([v.to(device) for v in values]).isfinite()
    if any_across_ranks(~finite.all().reshape(1)).item():
        names = [name for name, ok in zip(losses, finite.tolist()) if not ok]
        raise NonFiniteLossError(names or ["(on another rank)"], step)


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
        """Schedulers for training; weights from ``--epoch``/``--load_iter`` for testing. ``--continue_train`` is
        resumed by ``training.session.TrainingSession``, which restores the whole training state, not only weights."""
        if self.isTrain:
            self.schedulers = [get_scheduler(optimizer, opt) for optimizer in self.optimizers]
        else:
            self.load_networks(checkpoint_tag(opt))

    def eval(self) -> None:
        for net in self.networks().values():
            net.eval()

    def train(self) -> None:
        for net in self.networks().values():
            net.train()

    def update_learning_rate(self) -> float:
        for scheduler in self.schedulers:
            _step(scheduler)
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
            write_checkpoint(state, self.network_path(epoch, name))

    def load_networks(self, epoch: int | str) -> None:
        for name, net in self.networks().items():
            path = self.network_path(epoch, name)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found: no checkpoint '{epoch}' for network {name} of experiment "
                    f"'{self.opt.name}' in {self.save_dir}. Check --name, --checkpoints_dir and --epoch."
                )
            load_state_dict_checked(unwrap(net), read_checkpoint(path, self.device), str(path))

    # ---------------------------------------------------------------- training state (training/state.py)

    def pools(self) -> dict[str, ImagePool]:
        return {k: v for k, v in vars(self).items() if isinstance(v, ImagePool)}

    def scalers(self) -> dict[str, torch.amp.GradScaler]:
        """Gradient scalers of ``--amp fp16`` (their loss scale is part of the training state)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.amp.GradScaler)}

    def training_state_dict(self) -> dict:
        """Networks (unwrapped, on the CPU), optimizers, schedulers and image pools."""
        return {
            "networks": {
                name: {k: v.detach().cpu() for k, v in unwrap(net).state_dict().items()}
                for name, net in self.networks().items()
            },
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "pools": {name: pool.state_dict() for name, pool in self.pools().items()},
            "scalers": {name: scaler.state_dict() for name, scaler in self.scalers().items()},
        }

    def load_training_state_dict(self, state: dict, source: str) -> None:
        """Inverse of ``training_state_dict``; a mismatch names ``source`` and the tensors at fault."""
        for name, net in self.networks().items():
            if name not in state["networks"]:
                raise RuntimeError(f"{source} has no network {name} (it holds {sorted(state['networks'])})")
            load_state_dict_checked(unwrap(net), state["networks"][name], f"{source} [net{name}]")
        if len(state["optimizers"]) != len(self.optimizers) or len(state["schedulers"]) != len(self.schedulers):
            raise RuntimeError(
                f"{source} holds {len(state['optimizers'])} optimizers and {len(state['schedulers'])} "
                f"schedulers, the model {len(self.optimizers)} and {len(self.schedulers)}: "
                "it was written by another model (--model)"
            )
        base_lrs = [[group.get("initial_lr", group["lr"]) for group in o.param_groups] for o in self.optimizers]
        for optimizer, saved, lrs in zip(self.optimizers, state["optimizers"], base_lrs):
            optimizer.load_state_dict(saved)  # Adam's moments; its learning rates are this run's, below
            for group, lr in zip(optimizer.param_groups, lrs):
                group["lr"] = group["initial_lr"] = lr
        self.replay_schedule(state["epoch"], [saved.get("last_epoch", 0) for saved in state["schedulers"]])
        for name, pool in self.pools().items():
            if name in state["pools"]:
                pool.load_state_dict(state["pools"][name], self.device)
        for name, scaler in self.scalers().items():
            if state.get("scalers", {}).get(name):  # empty when saved without --amp fp16: a fresh scale then
                scaler.load_state_dict(state["scalers"][name])

    def replay_schedule(self, epoch: int, steps: list[int]) -> None:
        """Rebuild the schedulers from this run's options and step scheduler i ``steps[i]`` times, the number of epochs
        the saved run had finished, so that ``epoch`` trains at the learning rate these options give it.

        The saved schedulers are not reloaded: they hold the old run's ``--niter``, ``--niter_decay`` and ``--lr``, so
        a run extended with a larger ``--niter`` would go on at the old schedule's end (learning rate 0). Replaying the
        steps makes the same floating-point operations as a run started with these options (a constant metric steps
        the plateau policy, so it replays too): on the CPU with ``--deterministic`` the two are bit-identical.
        """
        self.schedulers = [get_scheduler(o, self.opt, start_epoch=epoch - n) for o, n in zip(self.optimizers, steps)]
        with warnings.catch_warnings():  # replayed steps come before this process's first optimizer.step()
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
            for scheduler, n in zip(self.schedulers, steps):
                for _ in range(n):
                    _step(scheduler)

    def step_optimizer(
        self,
        optimizer: torch.optim.Optimizer,
        losses: dict[str, torch.Tensor],
        scaler: torch.amp.GradScaler | None = None,
        step: int | None = None,
    ) -> None:
        """One optimizer step on the sum of ``losses`` (``scaler``: ``--amp fp16``'s loss scaling). Every parameter
        gets a gradient, zero where no loss reaches it in this step, so Adam still moves it by its momentum, as the
        2018 code's ``zero_grad()`` did (an image without instances gives the mask branch no gradient). The zeros
        come from this step alone, so a resumed run, which starts with no gradients, steps exactly as an
        uninterrupted one."""
        self.check_finite(losses, step)  # --skip_nonfinite: stop before a NaN reaches the weights
        # Freed, then the gradients absent after backward set to zero: the same values as zeroing first, without
        # a fill and an accumulation per parameter.
        optimizer.zero_grad(set_to_none=True)
        loss = sum(losses.values())
        (scaler.scale(loss) if scaler is not None else loss).backward()
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()

    def check_finite(self, losses: dict[str, torch.Tensor], step: int | None = None) -> None:
        """With ``--skip_nonfinite``, raise ``NonFiniteLossError`` before a NaN/inf loss reaches backward and the
        optimizer step (see ``raise_if_nonfinite``)."""
        if getattr(self.opt, "skip_nonfinite", False):
            raise_if_nonfinite(losses, step)

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


def _step(scheduler) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(0)  # CycleGAN stepped the plateau policy with a constant metric
    else:
        scheduler.step()

"""Training feedback: console and ``loss_log.txt``, the training web page, and Visdom when a server runs.

Only the main process should build one (``train.py`` does). Visdom is optional: when it is not installed or no
server answers, training goes on and one warning says how to start it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from . import html
from .util import save_image, tensor2im


class Visualizer:
    def __init__(self, opt):
        self.opt = opt
        self.name = opt.name
        self.win_size = opt.display_winsize
        self.expr_dir = Path(opt.checkpoints_dir) / opt.name
        self.expr_dir.mkdir(parents=True, exist_ok=True)
        self.log_name = self.expr_dir / "loss_log.txt"
        with open(self.log_name, "a") as log_file:
            log_file.write(f"================ Training Loss ({time.strftime('%c')}) ================\n")
        self.use_html = opt.isTrain and not opt.no_html
        self.web_dir = self.expr_dir / "web"
        self.img_dir = self.web_dir / "images"
        self.display_id = opt.display_id
        self.ncols = opt.display_ncols
        self.vis = None
        self.plot_data: dict[str, list] = {"X": [], "Y": [], "legend": []}
        if self.display_id > 0:
            self.vis = self._connect_visdom()

    def _connect_visdom(self):
        server = f"{self.opt.display_server}:{self.opt.display_port}"
        try:
            import visdom
        except ImportError:
            print(f"Visdom is not installed: live plots are off (pip install visdom, or --display_id 0). "
                  f"The training page is {self.web_dir / 'index.html'}.")  # fmt: skip
            return None
        try:
            vis = visdom.Visdom(server=self.opt.display_server, port=self.opt.display_port, env=self.opt.display_env,
                                raise_exceptions=False, use_incoming_socket=False)  # fmt: skip
            if vis.check_connection(timeout_seconds=1):
                return vis
        except Exception:
            pass
        print(f"No Visdom server at {server}: live plots are off. Start one with `python -m visdom.server "
              f"-port {self.opt.display_port}` (or pass --display_id 0). The training page is "
              f"{self.web_dir / 'index.html'}.")  # fmt: skip
        return None

    def display_current_results(self, visuals: OrderedDict[str, torch.Tensor], epoch: int, save_result: bool) -> None:
        """Show the current visuals in Visdom and, when ``save_result``, add them to the training page."""
        images = OrderedDict((label, tensor2im(image)) for label, image in visuals.items())
        if self.vis is not None:
            try:
                if self.ncols > 0:
                    grid = np.stack([im.transpose(2, 0, 1) for im in _same_size(list(images.values()))])
                    self.vis.images(grid, nrow=self.ncols, win=self.display_id + 1, padding=2,
                                    opts={"title": f"{self.name} images", "caption": " | ".join(images)})  # fmt: skip
                else:
                    for i, (label, im) in enumerate(images.items()):
                        self.vis.image(im.transpose(2, 0, 1), win=self.display_id + 1 + i, opts={"title": label})
            except Exception:
                self.vis = None
        if self.use_html and save_result:
            for label, im in images.items():
                save_image(im, self.img_dir / f"epoch{epoch:03d}_{label}.png")
            self.write_page(epoch, list(images))

    def write_page(self, epoch: int, labels: list[str]) -> None:
        page = html.HTML(self.web_dir, f"Experiment name = {self.name}", refresh=60)
        for n in range(epoch, 0, -1):
            names = [f"epoch{n:03d}_{label}.png" for label in labels]
            if not all((self.img_dir / name).is_file() for name in names):
                continue
            page.add_header(f"epoch [{n}]")
            page.add_images(names, labels, names, width=self.win_size)
        page.save()

    def plot_current_losses(self, epoch: int, counter_ratio: float, losses: OrderedDict[str, float]) -> None:
        """One Visdom line per loss; x is the fractional epoch."""
        if self.vis is None:
            return
        self.plot_data["X"].append(epoch + counter_ratio)
        self.plot_data["Y"].append([losses[k] for k in losses])
        self.plot_data["legend"] = list(losses)
        try:
            x = np.array(self.plot_data["X"])
            self.vis.line(
                X=np.stack([x] * len(losses), 1), Y=np.array(self.plot_data["Y"]), win=self.display_id,
                opts={"title": f"{self.name} loss over time", "legend": self.plot_data["legend"],
                      "xlabel": "epoch", "ylabel": "loss"},
            )  # fmt: skip
        except Exception:
            self.vis = None

    def print_current_losses(self, epoch: int, iters: int, losses: OrderedDict[str, float], t_comp: float,
                             t_data: float, extra: str = "") -> str:  # fmt: skip
        """CycleGAN's line: ``(epoch: 1, iters: 100, time: 0.512, data: 0.003) D_A: 0.251 G_A: ...``."""
        message = f"(epoch: {epoch}, iters: {iters}, time: {t_comp:.3f}, data: {t_data:.3f}) "
        message += " ".join(f"{k}: {v:.3f}" for k, v in losses.items())
        if extra:
            message += f" | {extra}"
        print(message, flush=True)
        with open(self.log_name, "a") as log_file:
            log_file.write(message + "\n")
        return message


def _same_size(images: list[np.ndarray]) -> list[np.ndarray]:
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    return [np.pad(im, ((0, h - im.shape[0]), (0, w - im.shape[1]), (0, 0)), constant_values=255) for im in images]

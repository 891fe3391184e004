"""Training feedback: console and ``loss_log.txt``, the training web page, and Visdom when a server runs.

Only the main process should build a ``Visualizer``; on any other rank of a torch.distributed run it does nothing
(no prints, no files), so a stray call cannot garble the log. Visdom is optional: when it is not installed or
no server answers, training goes on, one line says how to start a server, and the visualizer quietly tries again
every ``retry_seconds``; once a server answers, the live plots start with the whole loss history. The training page
``checkpoints/<name>/web/index.html`` needs no server: it shows the loss curve (drawn from ``loss_log.txt``) and the
latest visuals of each epoch, newest first.

test.py's results page is util/results_page.py.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from . import html
from .distributed import is_main_process
from .loss_plot import COLORS, LossLog, curve_points, downsample, render_svg, rgb
from .util import atomic_write_text, save_image, tensor2im

MAX_PLOT_POINTS = 2000  # per loss line sent to Visdom; longer histories are averaged in buckets


class Visualizer:
    def __init__(self, opt, retry_seconds: float = 60.0, page_refresh: int = 60):
        self.opt = opt
        self.enabled = is_main_process()
        if not self.enabled:
            return
        self.name = opt.name
        self.win_size = opt.display_winsize
        self.expr_dir = Path(opt.checkpoints_dir) / opt.name
        self.expr_dir.mkdir(parents=True, exist_ok=True)
        header = f"================ Training Loss ({time.strftime('%c')}) ================"
        self.log_name = append_to_loss_log(self.expr_dir, header)
        self.loss_log = LossLog(self.log_name)
        self.use_html = opt.isTrain and not opt.no_html
        self.web_dir = self.expr_dir / "web"
        self.img_dir = self.web_dir / "images"
        self.page_refresh = page_refresh
        self.display_id = opt.display_id
        self.ncols = opt.display_ncols
        self.server_url = f"{opt.display_server}:{opt.display_port}"
        self.retry_seconds = retry_seconds
        self.vis = None
        self.warned = False
        self.next_try = 0.0
        self.epoch_size: int | None = None  # images per epoch, learnt from plot_current_losses
        self._last_iters = 0
        self._page_labels: list[str] = []  # the visuals on the training page, once it exists
        self.extra_plots: dict[str, str] = {}  # more SVG charts under the loss curve (--eval_freq's metrics)
        self.plot_data: dict[str, list] = {"X": [], "Y": [], "legend": []}
        self._history_trimmed = False
        if self.display_id > 0:
            # A resumed run's Visdom plot starts with the history in loss_log.txt (trimmed at the first new point).
            x, series = curve_points(self.loss_log.update())
            if series:
                self.plot_data = {"X": x, "Y": [list(row) for row in zip(*series.values())], "legend": list(series)}
            self._connect()

    # ---------------------------------------------------------------- Visdom
    def _connect(self) -> bool:
        """Try the server once; on failure warn (the first time only) and schedule the next try."""
        self.next_try = time.monotonic() + self.retry_seconds
        try:
            self.vis = visdom_client(self.opt.display_server, self.opt.display_port, self.opt.display_env)
        except ImportError:
            self.display_id = 0  # no retries: installing a package needs a restart anyway
            self._warn(
                "Visdom is not installed, so live plots are off (pip install -r requirements-visdom.txt, "
                "or pass --display_id 0)."
            )
            return False
        except Exception:
            self.vis = None
            self._warn(
                f"No Visdom server at {self.server_url}, so live plots are off; training goes on and retries every "
                f"{self.retry_seconds:.0f} s. Start one with `python -m visdom.server -port {self.opt.display_port}` "
                f"(offline machines: `python scripts/install_visdom_assets.py` once first) and open {self.server_url}, "
                "or pass --display_id 0."
            )
            return False
        if self.warned:  # the loss plot is resent whole, with its history, at the next print_freq
            print(f"Visdom server at {self.server_url} answered: live plots are on.", flush=True)
        return True

    def _warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            print(f"{message} Training page: {self.web_dir / 'index.html'}", flush=True)

    def _call(self, send) -> None:
        """Run ``send(vis)`` if a server is (or, once per ``retry_seconds``, comes) up; never raise."""
        if self.display_id <= 0:
            return
        if self.vis is None and (time.monotonic() < self.next_try or not self._connect()):
            return
        try:
            send(self.vis)
        except Exception:
            self.vis = None
            self.next_try = time.monotonic() + self.retry_seconds
            self._warn(f"Lost the Visdom server at {self.server_url}; retrying every {self.retry_seconds:.0f} s.")

    def _send_losses(self, vis) -> None:
        columns = {n: [y[i] for y in self.plot_data["Y"]] for i, n in enumerate(self.plot_data["legend"])}
        x, ys = downsample(self.plot_data["X"], columns, MAX_PLOT_POINTS)
        legend = list(ys)
        X = np.stack([np.asarray(x, dtype=np.float64)] * len(legend), 1)
        Y = np.stack([np.asarray(ys[n], dtype=np.float64) for n in legend], 1)
        Y[~np.isfinite(Y)] = np.nan  # visdom sends NaN as a gap; an infinity would break the page's JSON
        vis.line(
            X=X,
            Y=Y,
            win=str(self.display_id),
            opts={
                "title": f"{self.name} loss over time",
                "legend": legend,
                "xlabel": "epoch",
                "ylabel": "loss",
                "linecolor": np.array([rgb(COLORS[i % len(COLORS)]) for i in range(len(legend))]),
            },
        )

    def _send_images(self, vis, images: OrderedDict[str, np.ndarray]) -> None:
        if self.ncols > 0:
            ncols = min(self.ncols, len(images))
            grid = np.stack([im.transpose(2, 0, 1) for im in _same_size(list(images.values()))])
            vis.images(grid, nrow=ncols, win=str(self.display_id + 1), padding=2, opts={"title": f"{self.name} images"})
            rows = [list(images)[i : i + ncols] for i in range(0, len(images), ncols)]
            cells = ["".join(f'<td style="padding: 0 8px">{label}</td>' for label in row) for row in rows]
            table = "".join(f"<tr>{c}</tr>" for c in cells)
            vis.text(f"<table>{table}</table>", win=str(self.display_id + 2), opts={"title": f"{self.name} labels"})
        else:
            for i, (label, im) in enumerate(images.items()):
                vis.image(im.transpose(2, 0, 1), win=str(self.display_id + 1 + i), opts={"title": label})

    # ---------------------------------------------------------------- CycleGAN's API
    def display_current_results(self, visuals: OrderedDict[str, torch.Tensor], epoch: int, save_result: bool) -> None:
        """Show the current visuals in Visdom and, when ``save_result``, put them and the loss curve on the training
        page (``visuals``: name -> ``[B, C, H, W]`` in [-1, 1]; the first sample is shown)."""
        if not self.enabled:
            return
        images = OrderedDict((label, tensor2im(image)) for label, image in visuals.items())
        self._call(lambda vis: self._send_images(vis, images))
        if self.use_html and save_result:
            for label, im in images.items():
                save_image(im, self.img_dir / f"epoch{epoch:03d}_{label}.png")
            self.write_page(epoch, list(images))

    def write_page(self, epoch: int, labels: list[str]) -> Path:
        """The training page: the loss curve, then each epoch's latest visuals, newest epoch first."""
        self._page_labels = labels
        page = html.HTML(self.web_dir, f"Experiment name = {self.name}", refresh=self.page_refresh)
        page.add_text(
            f"Updated {time.strftime('%Y-%m-%d %H:%M:%S')} at epoch {epoch}; "
            f"this page reloads every {self.page_refresh} s."
        )
        svg = self.loss_curve_svg()
        atomic_write_text(self.web_dir / "loss_curve.svg", svg)
        page.add_raw(f'<div class="loss-curve">{svg}</div>')
        if self.extra_plots:  # side by side where the window is wide enough
            charts = "".join(
                f'<div class="{name}" style="flex: 1 1 560px">{chart}</div>' for name, chart in self.extra_plots.items()
            )
            page.add_raw(f'<div class="extra-plots" style="display: flex; flex-wrap: wrap; gap: 8px">{charts}</div>')
        options = self.expr_dir / "train_opt.txt"
        if options.is_file():
            page.add_details("options", options.read_text())
        ncols = self.ncols if self.ncols > 0 else 0
        for n in range(epoch, 0, -1):
            names = [f"epoch{n:03d}_{label}.png" for label in labels]
            if not names or not all((self.img_dir / name).is_file() for name in names):
                continue
            page.add_header(f"epoch [{n}]")
            page.add_images(names, labels, names, width=self.win_size, ncols=ncols)
        return page.save()

    def refresh_page(self, epoch: int) -> None:
        """Rewrite the training page now (its charts changed), with the visuals it shows."""
        if self.enabled and self.use_html:
            self.write_page(epoch, self._page_labels)

    def plot_metrics(self, x: list[float], series: dict[str, list[float]], title: str) -> None:
        """A second Visdom line plot (window ``<display_id>_metrics``), e.g. --eval_freq's metrics over epochs."""
        if not self.enabled or self.display_id <= 0 or not x:
            return
        legend = list(series)
        X = np.stack([np.asarray(x, dtype=np.float64)] * len(legend), 1)
        Y = np.stack([np.asarray(series[n], dtype=np.float64) for n in legend], 1)
        Y[~np.isfinite(Y)] = np.nan
        self._call(
            lambda vis: vis.line(
                X=X, Y=Y, win=f"{self.display_id}_metrics", opts={"title": title, "legend": legend, "xlabel": "epoch"}
            )
        )

    def loss_curve_svg(self) -> str:
        x, series = curve_points(self.loss_log.update(), self.epoch_size)
        return render_svg(x, series, f"{self.name} loss over time")

    def plot_current_losses(self, epoch: int, counter_ratio: float, losses: OrderedDict[str, float]) -> None:
        """One Visdom line per loss; x is the fractional epoch ``epoch - 1 + counter_ratio`` (epochs completed).
        Also redraws the training page's loss curve from ``loss_log.txt`` (print_current_losses comes first)."""
        if not self.enabled:
            return
        if counter_ratio > 0 and self._last_iters > 0:
            self.epoch_size = max(1, round(self._last_iters / counter_ratio))
        if self.use_html and self._page_labels:  # a fresh loss curve at every print, images as they are
            self.write_page(epoch, self._page_labels)
        if self.display_id <= 0:
            return
        if list(losses) != self.plot_data["legend"]:
            self.plot_data = {"X": [], "Y": [], "legend": list(losses)}
        if not self._history_trimmed:  # the earlier runs' points up to this run's first epoch (see LossLog)
            self._history_trimmed = True
            keep = [i for i, x in enumerate(self.plot_data["X"]) if x <= epoch - 1]
            self.plot_data["X"] = [self.plot_data["X"][i] for i in keep]
            self.plot_data["Y"] = [self.plot_data["Y"][i] for i in keep]
        self.plot_data["X"].append(epoch - 1 + counter_ratio)
        self.plot_data["Y"].append([float(v) for v in losses.values()])
        self._call(self._send_losses)

    def print_current_losses(
        self, epoch: int, iters: int, losses: OrderedDict[str, float], t_comp: float, t_data: float, extra: str = ""
    ) -> str:
        """CycleGAN's line: ``(epoch: 1, iters: 100, time: 0.512, data: 0.003) D_A: 0.251 G_A: ...``."""
        message = f"(epoch: {epoch}, iters: {iters}, time: {t_comp:.3f}, data: {t_data:.3f}) "
        message += " ".join(f"{k}: {v:.3f}" for k, v in losses.items())
        if extra:
            message += f" | {extra}"
        if not self.enabled:
            return message
        self._last_iters = iters
        print(message, flush=True)
        append_to_loss_log(self.expr_dir, message)
        return message


def append_to_loss_log(folder: str | Path, line: str, timestamp: bool = False) -> Path:
    """Append one line to ``<folder>/loss_log.txt`` (the loss lines, and the training's notes with a timestamp);
    returns the file's path."""
    path = Path(folder) / "loss_log.txt"
    with open(path, "a") as log_file:
        log_file.write(f"[{time.strftime('%c')}] {line}\n" if timestamp else f"{line}\n")
    return path


@functools.lru_cache(maxsize=1)
def _client_class():
    """A ``visdom.Visdom`` whose requests time out, whose HTTP errors count as failures, and whose library logging
    (a warning per session, tracebacks) stays quiet: the Visualizer reports problems in one line of its own."""
    import requests
    import visdom

    logging.getLogger("visdom").setLevel(logging.CRITICAL)

    class Client(visdom.Visdom):
        timeout = (2.0, 10.0)  # seconds to connect, to answer

        @property
        def session(self):
            if self._session is None:
                self._session = requests.Session()
            return self._session

        def _handle_post(self, url, data=None):
            r = self.session.post(url, data=data or {}, timeout=self.timeout)
            r.raise_for_status()
            return r.text

    return Client


def visdom_client(server: str, port: int, env: str):
    """Connect, or raise: the constructor's first request (create ``env``) fails when no server answers."""
    return _client_class()(server=server, port=port, env=env, raise_exceptions=True, use_incoming_socket=False)


def _same_size(images: list[np.ndarray]) -> list[np.ndarray]:
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    return [np.pad(im, ((0, h - im.shape[0]), (0, w - im.shape[1]), (0, 0)), constant_values=255) for im in images]

"""``--eval_freq N``: the evaluation's metrics on a fixed held-out set every N epochs of training, logged and plotted.

At the end of every N-th epoch the main process translates the first ``--eval_num`` images of ``--eval_phase``
(resized to the training crop, in file order, no flip: the same images every time) with the model's ``test()``,
measures them as evaluate.py does (metrics/evaluator.py) and

- appends a line to ``checkpoints/<name>/metrics_log.jsonl`` (``{"epoch", "total_iters", "AtoB": {...}, ...}``;
  a ``{"session_start": e}`` line marks each start of train.py, and a run started afresh at epoch e replaces
  the earlier entries from epoch e on, as the loss curve does);
- draws the metrics over epochs on the training page (``web/metrics_*.svg``) and in a second Visdom window.

The domain classifier is the one evaluate.py uses (trained once at the crop size, kept in the run's folder); FID and
KID are added where the Inception weights are on the machine. Evaluation draws no random numbers from the
training's generators (their states are restored afterwards), so a run with ``--eval_freq`` trains exactly as
one without it.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from data import create_dataset
from util.distributed import barrier, is_main_process, unwrap
from util.loss_plot import render_svg
from util.util import atomic_write_text

from .classifier import load_or_train
from .evaluator import Evaluator, dumps
from .inception import InceptionFeatures, find_weights, how_to_get_weights

# (file stem, title, y label, metrics): one chart each on the training page.
CHARTS = (
    ("l1", "kept and changed pixels (L1 on [0, 1])", "L1", ("bg_l1", "fg_l1")),
    ("scores", "domain score and mask IoU", "share", ("domain_score", "mask_iou")),
    ("shape", "mask change (translated - input)", "change", ("area_change", "aspect_change", "extent_change")),
    ("fid", "FID", "FID", ("fid",)),
)
SHORT = {
    "bg_l1": "bg L1",
    "fg_l1": "inst L1",
    "domain_score": "domain",
    "mask_iou": "IoU",
    "area_change": "area",
    "aspect_change": "aspect",
    "extent_change": "extent",
    "fid": "FID",
}


def add_options(parser) -> None:
    add = parser.add_argument
    add("--eval_freq", type=int, default=0, help="evaluate on a held-out set every this many epochs (0: never)")
    add("--eval_phase", type=str, default="test", help="the held-out images: {eval_phase}A, {eval_phase}B")
    add("--eval_num", type=int, default=50, help="evaluate on at most this many held-out images per domain")


def read_log(path: str | Path) -> list[dict]:
    """The entries of ``metrics_log.jsonl`` in effect: a session start at epoch e drops earlier entries of epochs
    ≥ e; a later entry of the same epoch replaces an earlier one. A damaged line is skipped."""
    entries: list[dict] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return entries
    for line in lines:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash; the next evaluation appends a whole one
        if "session_start" in item:
            entries = [e for e in entries if e["epoch"] < item["session_start"]]
        elif "epoch" in item:
            entries = [e for e in entries if e["epoch"] != item["epoch"]] + [item]
    return entries


def chart_svgs(entries: list[dict], name: str) -> dict[str, str]:
    """One SVG per chart of ``CHARTS`` that has any value (x: epoch; one line per metric and direction)."""
    x = [float(e["epoch"]) for e in entries]
    out = {}
    for stem, title, ylabel, keys in CHARTS:
        series = {}
        for key in keys:
            for d in ("AtoB", "BtoA"):
                values = [e.get(d, {}).get(key) for e in entries]
                if any(v is not None for v in values):
                    series[f"{d} {SHORT[key]}"] = [math.nan if v is None else float(v) for v in values]
        if series:
            out[stem] = render_svg(
                x,
                series,
                f"{name}: {title}",
                width=620,
                height=280,
                svg_id=f"metrics_{stem}",
                ylabel=ylabel,
                empty_text="no evaluation yet",
            )
    return out


class EpochEvaluator:
    """Does nothing unless ``--eval_freq`` > 0; then ``end_epoch`` evaluates every ``--eval_freq`` epochs on the
    main process (the others wait at a barrier)."""

    def __init__(self, opt, device: torch.device, visualizer=None, log=print):
        self.opt, self.device, self.visualizer, self.log = opt, device, visualizer, log
        self.freq = getattr(opt, "eval_freq", 0)
        self.active = self.freq > 0 and is_main_process()
        if not self.active:
            return
        self.dir = Path(opt.checkpoints_dir) / opt.name
        self.log_path = self.dir / "metrics_log.jsonl"
        eval_opt = copy.copy(opt)  # the held-out images: fixed, in order, at the training crop's size, no flip
        eval_opt.phase, eval_opt.isTrain, eval_opt.serial_batches, eval_opt.no_flip = opt.eval_phase, False, True, True
        eval_opt.resize_or_crop, eval_opt.max_dataset_size = "resize", opt.eval_num
        self.dataset = create_dataset(eval_opt)  # a wrong --eval_phase fails here, before training starts
        self.classifier = self.inception = None
        self._prepared = False
        with open(self.log_path, "a") as f:
            f.write(json.dumps({"session_start": opt.epoch_count, "time": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
        self._show(read_log(self.log_path), opt.epoch_count)

    def _prepare(self) -> None:
        """The classifier and the Inception network, once (the classifier may take a minute to train)."""
        self._prepared = True
        opt = self.opt
        try:
            size = (opt.fineSizeH, opt.fineSizeW)
            self.classifier = load_or_train(
                self.dir / "domain_classifier.pth", opt.dataroot, size, self.device, log=self.log
            )
        except FileNotFoundError as e:
            self.log(f"--eval_freq: no domain score ({e})")
        weights = find_weights()
        if weights is None:
            self.log(f"--eval_freq: FID/KID skipped: {how_to_get_weights()}")
        else:
            self.inception = InceptionFeatures(weights).to(self.device)

    def end_epoch(self, epoch: int, model, total_iters: int = 0) -> dict | None:
        """Evaluate when ``epoch`` is a multiple of ``--eval_freq``: the metrics (main process), else None."""
        if self.freq <= 0 or epoch % self.freq:
            return None
        result = None
        if self.active:
            with _kept_random_state(self.device):
                result = self._evaluate(epoch, model, total_iters)
        barrier()
        return result

    def _evaluate(self, epoch: int, model, total_iters: int) -> dict:
        if not self._prepared:
            self._prepare()
        start = time.perf_counter()
        names = [f"net{n}" for n in model.model_names]
        wrapped = {n: getattr(model, n) for n in names}
        for n, net in wrapped.items():  # the main process alone: past DDP's wrappers, which would wait for the others
            setattr(model, n, unwrap(net))
        model.eval()
        evaluator = Evaluator(self.classifier, self.inception, swap_domains=self.opt.direction == "BtoA")
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=max(1, self.opt.batch_size), num_workers=0)
        try:
            for data in loader:
                model.set_input(data)
                model.test()
                visuals = model.get_current_visuals()
                masks = model.get_instance_masks() if hasattr(model, "get_instance_masks") else {}
                evaluator.add({k: v.float() for k, v in visuals.items()}, {k: v.float() for k, v in masks.items()})
        finally:
            for n, net in wrapped.items():
                setattr(model, n, net)
            model.train()
        metrics = evaluator.result()
        entry = {"epoch": epoch, "total_iters": total_iters, "time": time.strftime("%Y-%m-%d %H:%M:%S"), **metrics}
        with open(self.log_path, "a") as f:
            f.write(dumps(entry) + "\n")
        a, b = metrics["AtoB"], metrics["BtoA"]
        self.log(
            f"(epoch: {epoch}) eval on {a['num_images']} {self.opt.eval_phase} images in "
            f"{time.perf_counter() - start:.1f} s: "
            + "; ".join(
                f"{d} bg L1 {_f(m['bg_l1'])} domain {_f(m['domain_score'])} IoU {_f(m['mask_iou'])}"
                for d, m in (("AtoB", a), ("BtoA", b))
            )
        )
        self._show(read_log(self.log_path), epoch)
        return metrics

    def _show(self, entries: list[dict], epoch: int) -> None:
        """The charts on the training page and in Visdom (nothing before the first evaluation)."""
        if not entries or self.visualizer is None or not getattr(self.visualizer, "enabled", False):
            return
        svgs = chart_svgs(entries, self.opt.name)
        web = Path(self.opt.checkpoints_dir) / self.opt.name / "web"
        for stem, svg in svgs.items():
            atomic_write_text(web / f"metrics_{stem}.svg", svg)
        self.visualizer.extra_plots = {f"metrics_{s}": svg for s, svg in svgs.items()}
        self.visualizer.refresh_page(epoch)
        x = [float(e["epoch"]) for e in entries]
        series = {}
        for key in ("bg_l1", "fg_l1", "domain_score", "mask_iou"):
            for d in ("AtoB", "BtoA"):
                values = [e.get(d, {}).get(key) for e in entries]
                if any(v is not None for v in values):
                    series[f"{d} {SHORT[key]}"] = [math.nan if v is None else float(v) for v in values]
        if series:
            self.visualizer.plot_metrics(x, series, f"{self.opt.name} metrics on {self.opt.eval_phase}")


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


class _kept_random_state:
    """Python's, NumPy's and torch's (CPU and the device's) random states, restored on exit."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        self.py, self.np = random.getstate(), np.random.get_state()
        self.cpu = torch.get_rng_state()
        self.gpu = torch.cuda.get_rng_state_all() if self.cuda else None

    def __exit__(self, *exc):
        random.setstate(self.py)
        np.random.set_state(self.np)
        torch.set_rng_state(self.cpu)
        if self.gpu is not None:
            torch.cuda.set_rng_state_all(self.gpu)
        return False

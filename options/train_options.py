"""Options for ``train.py``."""

from __future__ import annotations

import argparse

from metrics.training import add_options as add_eval_options
from models.schedulers import LR_POLICIES

from .base_options import BaseOptions, _GanMode


class TrainOptions(BaseOptions):
    isTrain = True

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        add = parser.add_argument
        # display and logging
        add("--display_freq", type=int, default=400, help="show training results every this many images")
        add("--display_ncols", type=int, default=6, help="images per row in the Visdom panel (0: one window each)")
        add("--display_id", type=int, default=1, help="Visdom window id; 0 or less disables Visdom")
        add("--display_server", type=str, default="http://localhost", help="Visdom server")
        add("--display_env", type=str, default="main", help="Visdom environment")
        add("--display_port", type=int, default=8097, help="Visdom port")
        add("--update_html_freq", type=int, default=1000, help="refresh the training web page every this many images")
        add("--print_freq", type=int, default=100, help="print losses every this many images")
        add("--no_html", action="store_true", help="do not write the training web page under checkpoints/<name>/web")
        # checkpoints
        add("--save_latest_freq", type=int, default=5000, help="save 'latest' every this many images")
        add("--save_epoch_freq", type=int, default=5, help="save a per-epoch checkpoint every this many epochs")
        add("--save_by_iter", action="store_true", help="also keep the periodic checkpoints as iter_<n>")
        add(
            "--continue_train",
            action="store_true",
            help="resume the run exactly where checkpoint --epoch (default latest) stopped: networks, optimizers, "
            "schedules, image pools, random state, position in the epoch",
        )
        add(
            "--epoch_count",
            type=int,
            default=1,
            help="the first epoch's number (set by --continue_train; by hand only for network-only checkpoints)",
        )
        add(
            "--keep_epoch_state",
            action="store_true",
            help="also keep the full training state of every --save_epoch_freq epoch (<epoch>_state.pth), not only "
            "of the latest",
        )
        # robustness
        add(
            "--deterministic",
            action="store_true",
            help="deterministic algorithms: with the same --seed the same weights, and a resumed run equal to an "
            "uninterrupted one (exactly on the CPU)",
        )
        add(
            "--skip_nonfinite",
            action="store_true",
            help="skip a batch whose loss is NaN/inf (logged) instead of stopping; checks before each optimizer step",
        )
        add("--phase", type=str, default="train", help="data subfolders: {phase}A, {phase}B, ...")
        # optimization
        add("--niter", "--n_epochs", dest="niter", type=int, default=100, help="epochs at the initial learning rate")
        add(
            "--niter_decay",
            "--n_epochs_decay",
            dest="niter_decay",
            type=int,
            default=100,
            help="epochs of linear decay of the learning rate to zero",
        )
        add("--beta1", type=float, default=0.5, help="Adam's beta1")
        add("--lr", type=float, default=0.0002, help="initial learning rate of the generators")
        add(
            "--lr_D",
            type=float,
            default=0.0001,
            help="initial learning rate of the discriminators (the paper's 0.0001; the 2018 code used --lr for both)",
        )
        add("--no_lsgan", action="store_true", help="vanilla GAN loss (sigmoid + BCE) instead of least squares")
        add(
            "--gan_mode",
            type=str,
            choices=("lsgan", "vanilla"),
            action=_GanMode,
            default=argparse.SUPPRESS,
            help="alias: 'vanilla' means --no_lsgan",
        )
        add("--pool_size", type=int, default=50, help="size of the buffer of earlier fakes shown to D")
        add("--lr_policy", type=str, default="lambda", choices=LR_POLICIES, help="learning-rate schedule")
        add("--lr_decay_iters", type=int, default=50, help="step policy: multiply by 0.1 every this many epochs")
        add_eval_options(parser)  # --eval_freq, --eval_phase, --eval_num (metrics/training.py)
        return parser

"""Options for ``test.py``."""

from __future__ import annotations

import argparse

from data.mask_source import add_mask_source_options

from .base_options import BaseOptions


class TestOptions(BaseOptions):
    __test__ = False  # not a pytest test class
    isTrain = False

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        add = parser.add_argument
        add("--results_dir", type=str, default="./results/", help="results go to <results_dir>/<name>/<phase>_<epoch>")
        add("--aspect_ratio", type=float, default=1.0, help="aspect ratio of the saved result images")
        add("--phase", type=str, default="test", help="data subfolders: {phase}A, {phase}B, ...")
        add("--eval", action="store_true", help="use eval mode for the networks at test time")
        add("--num_test", "--ntest", dest="num_test", type=int, default=50, help="how many test images to run")
        add_mask_source_options(parser)  # --masks DIR|predict:NAME|predict:maskrcnn and the predictors' options
        return parser

"""Command-line options shared by training and testing.

Flag names and defaults are the 2018 code's (docs/DESIGN.md §5), so its README commands run unchanged; the newer
CycleGAN spellings are accepted as aliases. ``parse(args=[...])`` has no side effects: it neither prints, nor
writes files, nor touches CUDA. ``save_options`` writes the resolved options as text and JSON.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch

import data
import models
from models.layers import INIT_TYPES, NORM_LAYERS
from util.util import atomic_write_text

PREPROCESS_CHOICES = ("resize_and_crop", "resize", "crop", "none")


class _SetBoth(argparse.Action):
    """``--load_size 286`` sets both ``loadSizeH`` and ``loadSizeW`` (CycleGAN's square spelling)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for dest in self.const:
            setattr(namespace, dest, values)


class _GanMode(argparse.Action):
    """``--gan_mode lsgan|vanilla`` is CycleGAN's spelling of ``--no_lsgan``."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.no_lsgan = values == "vanilla"


class BaseOptions:
    isTrain = False

    def __init__(self):
        self.parser: argparse.ArgumentParser | None = None
        self.opt: argparse.Namespace | None = None

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        add = parser.add_argument
        # data
        add("--dataroot", required=True, help="folder with {phase}A, {phase}B and their _seg mask folders")
        add(
            "--dataset_mode",
            type=str,
            default="unaligned_seg",
            choices=sorted(data.DATASETS),
            help="how datasets are loaded",
        )
        add("--direction", type=str, default="AtoB", choices=("AtoB", "BtoA"), help="translate A→B or B→A")
        add("--batch_size", type=int, default=1, help="input batch size (in total, over all GPUs)")
        add("--loadSizeH", type=int, default=220, help="resize images to this height")
        add("--loadSizeW", type=int, default=220, help="resize images to this width")
        add("--fineSizeH", type=int, default=200, help="then crop to this height")
        add("--fineSizeW", type=int, default=200, help="then crop to this width")
        add(
            "--load_size",
            type=int,
            action=_SetBoth,
            const=("loadSizeH", "loadSizeW"),
            default=argparse.SUPPRESS,
            help="alias: set --loadSizeH and --loadSizeW",
        )
        add(
            "--crop_size",
            type=int,
            action=_SetBoth,
            const=("fineSizeH", "fineSizeW"),
            default=argparse.SUPPRESS,
            help="alias: set --fineSizeH and --fineSizeW",
        )
        add(
            "--resize_or_crop",
            "--preprocess",
            dest="resize_or_crop",
            type=str,
            default="resize_and_crop",
            choices=PREPROCESS_CHOICES,
            help="scaling and cropping of images at load time",
        )
        add("--no_flip", action="store_true", help="do not flip images horizontally for augmentation")
        add("--serial_batches", action="store_true", help="take images in order; otherwise shuffle and pair B randomly")
        add("--num_threads", type=int, default=4, help="data-loading worker processes")
        add("--max_dataset_size", type=float, default=float("inf"), help="use at most this many images per domain")
        add("--max_instances", type=int, default=20, help="read at most this many instance masks per image")
        add(
            "--mask_interp",
            type=str,
            default="bicubic",
            choices=("bicubic", "nearest"),
            help="resampling of masks; bicubic, like the images, is the 2018 code's",
        )
        # model
        add("--model", type=str, default="insta_gan", choices=sorted(models.MODELS), help="which model to use")
        add("--input_nc", type=int, default=3, help="channels of domain A images")
        add("--output_nc", type=int, default=3, help="channels of domain B images")
        add("--ngf", type=int, default=64, help="generator filters in the first conv layer")
        add("--ndf", type=int, default=64, help="discriminator filters in the first conv layer")
        add("--n_blocks", type=int, default=9, help="ResNet blocks in each generator encoder (9, the paper's)")
        add(
            "--netG",
            type=str,
            default="set",
            choices=("set", "resnet_9blocks", "resnet_6blocks", "basic"),
            help="generator: set (--model insta_gan); resnet_9blocks, resnet_6blocks, basic (--n_blocks blocks), "
            "for --model cycle_gan, whose default is resnet_9blocks",
        )
        add(
            "--netD",
            type=str,
            default="set",
            choices=("set", "basic", "n_layers"),
            help="discriminator: set (--model insta_gan); basic (3 layers) or n_layers (--n_layers_D), for "
            "--model cycle_gan, whose default is basic",
        )
        add("--n_layers_D", type=int, default=3, help="stride-2 layers of the PatchGAN discriminator")
        add(
            "--translation",
            type=str,
            default="sequential",
            choices=("sequential", "onestep"),
            help="--model insta_gan: sequential, --ins_per instances per step (the paper's sequential mini-batch "
            "translation); onestep, all --ins_max instances in one step, i.e. --ins_per = --ins_max (the paper's "
            "Fig. 10 ablation), in training and at test",
        )
        add("--norm", type=str, default="instance", choices=sorted(NORM_LAYERS), help="normalization layer")
        add("--init_type", type=str, default="normal", choices=INIT_TYPES, help="network initialization")
        add("--init_gain", type=float, default=0.02, help="scale for normal, xavier and orthogonal init")
        add("--no_dropout", action="store_true", help="no dropout in the generator (InstaGAN's default)")
        # experiment
        add("--name", type=str, default="experiment_name", help="experiment name: where checkpoints and results go")
        add("--gpu_ids", type=str, default="0", help="GPU ids, e.g. 0 or 0,1,2; -1 for the CPU")
        add("--checkpoints_dir", type=str, default="./checkpoints", help="models are saved here")
        add("--epoch", type=str, default="latest", help="which checkpoint to load: 'latest' or an epoch number")
        add("--load_iter", type=int, default=0, help="if > 0, load the checkpoint iter_<load_iter> instead of --epoch")
        add("--display_winsize", type=int, default=256, help="image width on the web pages and in Visdom")
        add("--seed", type=int, default=0, help="random seed for Python, NumPy and torch")
        add("--verbose", action="store_true", help="print more, such as the network architectures")
        add("--suffix", type=str, default="", help="appended to --name, formatted with the options: {netG}_{ngf}")
        return parser

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        return self.initialize(parser)

    def parse(self, args: list[str] | None = None) -> argparse.Namespace:
        """Parse ``args`` (``sys.argv[1:]`` when None) into the resolved options."""
        parser = self.build_parser()
        known, _ = parser.parse_known_args(args)
        parser = models.get_option_setter(known.model)(parser, self.isTrain)
        known, _ = parser.parse_known_args(args)
        parser = data.get_option_setter(known.dataset_mode)(parser, self.isTrain)
        opt = parser.parse_args(args)
        opt.isTrain = self.isTrain
        if opt.suffix:
            opt.name = f"{opt.name}_{opt.suffix.format(**vars(opt))}"
        opt.gpu_ids = parse_gpu_ids(opt.gpu_ids)
        self.validate(opt, parser)
        self.parser, self.opt = parser, opt
        return opt

    def validate(self, opt: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
        for name in ("loadSizeH", "loadSizeW", "fineSizeH", "fineSizeW", "batch_size", "ngf", "ndf"):
            if getattr(opt, name) < 1:
                parser.error(f"--{name} must be positive, got {getattr(opt, name)}")
        if opt.fineSizeH % 4 or opt.fineSizeW % 4:
            parser.error(
                f"--fineSizeH/--fineSizeW ({opt.fineSizeH}x{opt.fineSizeW}) must be multiples of 4: "
                "the generator downsamples twice by 2"
            )
        if opt.resize_or_crop == "resize_and_crop" and (opt.fineSizeH > opt.loadSizeH or opt.fineSizeW > opt.loadSizeW):
            parser.error(
                f"the crop --fineSizeH/W {opt.fineSizeH}x{opt.fineSizeW} is larger than the resize "
                f"--loadSizeH/W {opt.loadSizeH}x{opt.loadSizeW}; make --loadSize* at least --fineSize*"
            )
        for flag, allowed in zip(("netG", "netD"), models.NETWORKS.get(opt.model, ((), ()))):
            if allowed and getattr(opt, flag) not in allowed:
                parser.error(
                    f"argument --{flag}: invalid choice for --model {opt.model}: {getattr(opt, flag)!r} "
                    f"(choose from {', '.join(allowed)})"
                )
        if opt.translation == "onestep" and hasattr(opt, "ins_per"):  # all --ins_max instances in one step (Fig. 10)
            if opt.ins_per not in (parser.get_default("ins_per"), opt.ins_max):
                parser.error(
                    f"--translation onestep translates all --ins_max ({opt.ins_max}) instances in one step: "
                    f"drop --ins_per {opt.ins_per}, or use --translation sequential"
                )
            opt.ins_per = opt.ins_max
        ins_max, ins_per = getattr(opt, "ins_max", 1), getattr(opt, "ins_per", 1)
        if ins_per < 1 or ins_max < ins_per or ins_max % ins_per:
            parser.error(f"--ins_max ({ins_max}) must be a positive multiple of --ins_per ({ins_per})")
        if ins_max > opt.max_instances:
            parser.error(f"--ins_max ({ins_max}) cannot exceed --max_instances ({opt.max_instances})")


def parse_gpu_ids(text: str | list[int]) -> list[int]:
    """``"0,1"`` -> ``[0, 1]``; ``"-1"`` -> ``[]`` (CPU)."""
    if isinstance(text, list):
        return text
    try:
        ids = [int(s) for s in str(text).split(",") if s.strip() != ""]
    except ValueError:
        raise SystemExit(
            f"--gpu_ids must be comma-separated integers such as 0 or 0,1 (or -1 for CPU), got {text!r}"
        ) from None
    return [i for i in ids if i >= 0]


def resolve_device(opt: argparse.Namespace) -> torch.device:
    """The device this process runs on. Falls back to the CPU, with a warning, when no GPU is present."""
    if not opt.gpu_ids:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        ids = ",".join(map(str, opt.gpu_ids))
        warnings.warn(
            f"--gpu_ids {ids} asked for CUDA, but no GPU is available: using the CPU (--gpu_ids -1 silences this)",
            stacklevel=2,
        )
        opt.gpu_ids = []
        return torch.device("cpu")
    gpu = opt.gpu_ids[0]  # one process; DDP workers choose theirs in util.distributed.init_distributed
    if gpu >= torch.cuda.device_count():
        raise SystemExit(f"--gpu_ids names GPU {gpu}, but only {torch.cuda.device_count()} GPU(s) are visible")
    torch.cuda.set_device(gpu)
    return torch.device("cuda", gpu)


def options_text(opt: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> str:
    lines = ["----------------- Options ---------------"]
    for key, value in sorted(vars(opt).items()):
        default = parser.get_default(key) if parser is not None else None
        comment = f"\t[default: {default}]" if parser is not None and value != default and default is not None else ""
        lines.append(f"{key:>25}: {str(value):<30}{comment}")
    lines.append("----------------- End -------------------")
    return "\n".join(lines)


def save_options(opt: argparse.Namespace, parser: argparse.ArgumentParser | None, prefix: str) -> Path:
    """Write ``<checkpoints_dir>/<name>/<prefix>_opt.txt`` and ``.json`` (atomically). Returns the folder."""
    folder = Path(opt.checkpoints_dir) / opt.name
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{prefix}_opt.txt", options_text(opt, parser) + "\n")
    as_json = json.dumps(vars(opt), indent=2, sort_keys=True, default=str)
    atomic_write_text(folder / f"{prefix}_opt.json", as_json + "\n")
    return folder

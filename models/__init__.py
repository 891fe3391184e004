"""Model registry: ``--model`` names to classes. Unknown names fail loudly with the choices."""

from __future__ import annotations

import torch

from .base_model import BaseModel
from .cycle_gan_model import CycleGANModel
from .cycle_gan_networks import PATCH_DISCRIMINATORS, RESNET_GENERATORS
from .insta_gan_model import InstaGANModel
from .mask_predictor_model import MaskPredictorModel

MODELS: dict[str, type[BaseModel]] = {
    "insta_gan": InstaGANModel,
    "cycle_gan": CycleGANModel,
    "mask_predictor": MaskPredictorModel,
}

# The --netG and --netD each model builds, checked when the options are parsed (models not named here check nothing).
NETWORKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "insta_gan": (("set",), ("set",)),
    "cycle_gan": (tuple(RESNET_GENERATORS), PATCH_DISCRIMINATORS),
}


def get_model_class(name: str) -> type[BaseModel]:
    if name not in MODELS:
        raise ValueError(f"unknown --model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def get_option_setter(name: str):
    return get_model_class(name).modify_commandline_options


def create_model(opt, device: torch.device | str = "cpu") -> BaseModel:
    return get_model_class(opt.model)(opt, torch.device(device))

"""Model registry: ``--model`` names to classes. Unknown names fail loudly with the choices."""

from __future__ import annotations

import torch

from .base_model import BaseModel
from .insta_gan_model import InstaGANModel

MODELS: dict[str, type[BaseModel]] = {"insta_gan": InstaGANModel}


def get_model_class(name: str) -> type[BaseModel]:
    if name not in MODELS:
        raise ValueError(f"unknown --model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def get_option_setter(name: str):
    return get_model_class(name).modify_commandline_options


def create_model(opt, device: torch.device | str = "cpu") -> BaseModel:
    return get_model_class(opt.model)(opt, torch.device(device))

"""State dicts written by the 2018 code load into our networks by name."""

from __future__ import annotations

import re

import pytest
import torch

from models.compat import convert_state_dict, load_state_dict_checked
from models.discriminators import define_D
from models.generators import define_G


def to_2018_discriminator_format(state: dict) -> dict:
    """Our torch-parametrization names -> the 2018 SpectralNorm wrapper's (``<conv>.module.weight_bar`` ...)."""
    out = {}
    for key, value in state.items():
        m = re.match(r"^(.*)\.parametrizations\.weight\.(original|0\._u|0\._v)$", key)
        if m:
            out[f"{m[1]}.module.{ {'original': 'weight_bar', '0._u': 'weight_u', '0._v': 'weight_v'}[m[2]] }"] = value
        elif key.endswith(".bias") and f"{key[:-5]}.parametrizations.weight.original" in state:
            out[f"{key[:-5]}.module.bias"] = value
        else:
            out[key] = value
    return out


def test_2018_discriminator_state_dict_loads_and_gives_the_same_output():
    torch.manual_seed(0)
    source = define_D(3, 8)
    x = torch.cat([torch.rand(1, 3, 32, 32) * 2 - 1, -torch.ones(1, 2, 32, 32)], 1)
    x[:, 3, 4:20, 4:12] = 1
    source(x)  # one power iteration, so u and v are not fresh
    old = to_2018_discriminator_format(source.state_dict())
    assert "feature_img.0.module.weight_bar" in old and "classifier.3.module.weight_u" in old

    torch.manual_seed(1)
    target = define_D(3, 8)
    load_state_dict_checked(target, old, "D.pth")
    for (k, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), k
    torch.testing.assert_close(target(x), source(x))  # same weights, same u, v: same power iteration


def test_2018_generator_state_dict_with_dataparallel_prefix_and_old_norm_stats_loads():
    torch.manual_seed(0)
    source = define_G(3, 3, 8)
    old = {f"module.{k}": v for k, v in source.state_dict().items()}
    old["module.encoder_img.2.running_mean"] = torch.zeros(8)  # saved by PyTorch 0.3 for InstanceNorm
    target = define_G(3, 3, 8)
    load_state_dict_checked(target, old, "G.pth")
    x = torch.cat([torch.rand(1, 3, 32, 32), -torch.ones(1, 1, 32, 32)], 1)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))
    assert set(convert_state_dict(old, target)) == set(target.state_dict())


def test_a_checkpoint_of_another_architecture_names_the_mismatching_tensors():
    with pytest.raises(RuntimeError, match=r"G_A.pth does not match.*encoder_img.1.weight: checkpoint \(16, 3, 7, 7\)"):
        load_state_dict_checked(define_G(3, 3, 8), define_G(3, 3, 16).state_dict(), "G_A.pth")

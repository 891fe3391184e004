"""Loading network weights written by the 2018 InstaGAN code (PyTorch 0.4) or by this code.

The 2018 code wrapped each discriminator conv in its own ``SpectralNorm`` module, storing
``<conv>.module.weight_bar`` (the raw weight), ``.module.weight_u``, ``.module.weight_v`` and ``.module.bias``;
torch's parametrization stores ``<conv>.parametrizations.weight.original``, ``.parametrizations.weight.0._u``,
``._v`` and ``<conv>.bias``. Generators share our names. Checkpoints saved from DataParallel carry a ``module.``
prefix, and PyTorch < 0.4 saved running statistics for instance norm; both are removed here.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import torch
import torch.nn as nn

_SN_KEY = re.compile(r"^(?P<prefix>.*)\.module\.(?P<name>weight_bar|weight_u|weight_v|bias)$")
_SN_NAMES = {
    "weight_bar": "parametrizations.weight.original",
    "weight_u": "parametrizations.weight.0._u",
    "weight_v": "parametrizations.weight.0._v",
    "bias": "bias",
}


def convert_state_dict(state_dict: dict[str, torch.Tensor], net: nn.Module) -> OrderedDict[str, torch.Tensor]:
    """Map a 2018-format (or DataParallel-prefixed) state_dict onto ``net``'s key names."""
    expected = net.state_dict()
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith("module.") and key not in expected:
            key = key[len("module.") :]
        match = _SN_KEY.match(key)
        if match and key not in expected:
            key = f"{match['prefix']}.{_SN_NAMES[match['name']]}"
        if key not in expected and key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked"):
            continue  # instance norm statistics saved by PyTorch < 0.4, unused by InstanceNorm2d(affine=False)
        out[key] = value
    return out


def load_state_dict_checked(net: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load after conversion; on any mismatch raise an error naming ``source`` and the tensors at fault."""
    state_dict = convert_state_dict(state_dict, net)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong_shape:

        def head(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" (and {len(items) - 5} more)" if len(items) > 5 else "")

        details = []
        if wrong_shape:
            details.append(f"shape mismatch: {head(wrong_shape)}")
        if missing:
            details.append(f"missing from the checkpoint: {head(missing)}")
        if unexpected:
            details.append(f"not in the model: {head(unexpected)}")
        raise RuntimeError(
            f"{source} does not match the network built from the current options ({'; '.join(details)}). "
            "Check --ngf/--ndf/--netG/--netD/--norm/--n_layers_D/--input_nc/--output_nc against the options "
            "the checkpoint was trained with (train_opt.txt beside it)."
        )
    net.load_state_dict(state_dict)

"""``--compile`` computes what the eager model computes (docs/PERFORMANCE.md): D's compiled layers (its spectral
norms' power steps stay eager) give eager's outputs, gradients and u, v; a few training steps of compiled D end at
eager's weights and u, v; checkpoints load across the flag."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_train_opts
from test_speed import masks_batch

from models import create_model
from models.discriminators import define_D


def d_loss(outs: list[torch.Tensor]) -> torch.Tensor:
    return (outs[0] ** 2).mean() + ((outs[1] - 1) ** 2).mean()


@pytest.mark.parametrize("spectral_norm", ["original", "torch"])
def test_compiled_discriminator_equals_eager(one_thread, spectral_norm):
    """Dynamo and AOTAutograd trace D's layers (where the in-place power steps failed); the ``aot_eager`` backend
    keeps it to seconds, inductor runs in the training test below. Two rounds of the stacked call (the second
    from the u, v the first advanced), a single call, and evaluation mode."""
    torch._dynamo.reset()  # dynamo caches compiled code per function, across backends: start from none
    torch.manual_seed(0)
    eager = define_D(3, 8, spectral_norm=spectral_norm).train()
    compiled = copy.deepcopy(eager)
    compiled.compile_layers(backend="aot_eager", dynamic=False)
    real, fake = masks_batch(1, [0, 2, 3]).float(), masks_batch(2, [1]).float()
    for _ in range(2):
        x_e, x_c = fake.clone().requires_grad_(True), fake.clone().requires_grad_(True)
        outs_e, outs_c = eager([real, x_e]), compiled([real, x_c])
        for o_e, o_c in zip(outs_e, outs_c):
            torch.testing.assert_close(o_c, o_e, rtol=1e-5, atol=1e-6)
        (d_loss(outs_e) + eager(x_e).mean()).backward()
        (d_loss(outs_c) + compiled(x_c).mean()).backward()
        torch.testing.assert_close(x_c.grad, x_e.grad, rtol=1e-5, atol=1e-8)
        for (name, p_e), p_c in zip(eager.named_parameters(), compiled.parameters()):
            torch.testing.assert_close(p_c.grad, p_e.grad, rtol=1e-5, atol=1e-7, msg=name)
        state_e = eager.state_dict()
        for key, value in compiled.state_dict().items():  # u, v: the same power steps, eagerly, bit for bit
            assert torch.equal(value, state_e[key]), key
    eager.eval(), compiled.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(real), eager(real), rtol=1e-5, atol=1e-6)
    assert list(compiled.state_dict()) == list(define_D(3, 8, spectral_norm=spectral_norm).state_dict())


def d_biases_before_instance_norm(D) -> set[str]:
    """Their true gradient is 0 (instance norm removes a per-channel shift), so Adam turns float noise into ±lr
    steps: left out of the comparisons of weights after training (as in test_speed)."""
    names = set()
    for prefix, net in (("feature_img", D.feature_img), ("feature_seg", D.feature_seg), ("classifier", D.classifier)):
        layers = list(net)
        for i, (layer, after) in enumerate(zip(layers, layers[1:])):
            if isinstance(layer, torch.nn.Conv2d) and isinstance(after, torch.nn.InstanceNorm2d):
                names.add(f"{prefix}.{i}.bias")
    return names


@pytest.mark.slow
def test_compiled_discriminator_trains_as_eager(one_thread):
    """Inductor, as ``--compile`` runs it, and the model's optimizer (Adam, lr 0.0002, β1 0.5): three steps on
    D's loss of two successive calls, then the weights and u, v of the eager run within float noise."""
    torch._dynamo.reset()  # else the aot_eager code compiled above for the same function would run here
    torch.manual_seed(0)
    eager = define_D(3, 8).train()
    compiled = copy.deepcopy(eager)
    compiled.compile_layers(dynamic=False)
    real, fake = masks_batch(1, [0, 2, 3]).float(), masks_batch(2, [1]).float()
    for D in (eager, compiled):
        optimizer = torch.optim.Adam(D.parameters(), lr=0.0002, betas=(0.5, 0.999))
        for _ in range(3):
            optimizer.zero_grad()
            d_loss(D([real, fake])).backward()
            optimizer.step()
    skip = d_biases_before_instance_norm(eager)
    state_e = eager.state_dict()
    for key, value in compiled.state_dict().items():
        if key not in skip:
            torch.testing.assert_close(value, state_e[key], rtol=1e-4, atol=1e-6, msg=key)


def test_checkpoints_load_across_the_compile_flag(toy_root, tmp_path):
    """``--compile`` keeps every state_dict name: a checkpoint saved with it loads without it, and back."""
    compiled = create_model(make_train_opts(toy_root, tmp_path, "--compile"), "cpu")
    torch.manual_seed(1)
    eager = create_model(make_train_opts(toy_root, tmp_path), "cpu")
    compiled.save_networks("latest")
    eager.load_networks("latest")  # strict: fails on any missing or unexpected key
    for name in compiled.model_names:
        state_e = getattr(eager, f"net{name}").state_dict()
        for key, value in getattr(compiled, f"net{name}").state_dict().items():
            assert torch.equal(value, state_e[key]), f"{name}.{key}"
    eager.save_networks("eager")
    compiled.load_networks("eager")

"""Set generator and set discriminator: shapes, ranges, sizes, set properties, batch independence."""

from __future__ import annotations

import pytest
import torch

from models.discriminators import NLayerSetDiscriminator, define_D
from models.generators import ResnetSetGenerator, define_G
from models.layers import count_parameters


def make_input(batch: int, n_slots: int, h: int, w: int, filled: list[list[int]], seed: int = 0) -> torch.Tensor:
    """Image in [-1, 1] plus ``n_slots`` masks; ``filled[b]`` lists the slots of sample b holding a rectangle."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(batch, 3, h, w, generator=g) * 2 - 1
    segs = -torch.ones(batch, n_slots, h, w)
    for b, slots in enumerate(filled):
        for k in slots:
            y0, x0 = torch.randint(0, h // 2, (2,), generator=g).tolist()
            segs[b, k, y0 : y0 + h // 3, x0 : x0 + w // 4] = 1
    return torch.cat([img, segs], 1)


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return define_G(3, 3, 8).eval()


@pytest.fixture(scope="module")
def D():
    torch.manual_seed(0)
    return define_D(3, 8).train()


def test_parameter_counts_match_the_paper_code():
    G, D = define_G(3, 3, 64), define_D(3, 64)
    parts = ("encoder_img", "encoder_seg", "decoder_img", "decoder_seg")
    sizes = {name: count_parameters(getattr(G, name)) for name in parts}
    assert round(count_parameters(G) / 1e6, 3) == 26.815
    assert {k: round(v / 1e6, 3) for k, v in sizes.items()} == {
        "encoder_img": 11.000,
        "encoder_seg": 10.994,
        "decoder_img": 1.494,
        "decoder_seg": 3.328,
    }
    assert round(count_parameters(D) / 1e6, 2) == 9.72


@pytest.mark.parametrize("batch", [1, 3])
def test_generator_shapes_and_ranges_non_square(G, batch):
    h, w = 36, 52  # H != W, multiples of 4
    x = make_input(batch, 4, h, w, [[0, 1, 2], [0], []][:batch])
    with torch.no_grad():
        y = G(x)
    assert y.shape == (batch, 3 + 4, h, w)
    assert y.min() >= -1 and y.max() <= 1
    assert not torch.equal(y[0, :3], x[0, :3])


def test_generator_passes_empty_slots_through_unchanged(G):
    x = make_input(2, 4, 32, 32, [[0, 2], []])
    with torch.no_grad():
        y = G(x)
    assert torch.equal(y[0, 3 + 1], x[0, 3 + 1]) and torch.equal(y[0, 3 + 3], x[0, 3 + 3])
    assert torch.equal(y[1, 3:], x[1, 3:])  # a sample without instances keeps all its slots empty
    assert not torch.equal(y[0, 3 + 0], x[0, 3 + 0])  # a filled slot is translated


def test_discriminator_shapes(D):
    x = make_input(3, 4, 64, 48, [[0, 1], [], [3]])
    out = D(x)
    assert out.shape == (3, 1, 6, 4)
    assert torch.isfinite(out).all()


def test_generator_is_permutation_equivariant(G):
    x = make_input(1, 4, 32, 40, [[0, 1, 2]])
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        y = G(x)
        y_perm = G(torch.cat([x[:, :3], x[:, 3:][:, perm]], 1))
    torch.testing.assert_close(y_perm[:, :3], y[:, :3], atol=1e-5, rtol=1e-4)  # image: invariant
    torch.testing.assert_close(y_perm[:, 3:], y[:, 3:][:, perm], atol=1e-5, rtol=1e-4)  # masks: equivariant


def test_discriminator_is_permutation_invariant():
    torch.manual_seed(0)
    D = define_D(3, 8).eval()  # eval: no power iteration, so both calls see the same weights
    x = make_input(2, 4, 48, 48, [[0, 1, 3], [2]])
    perm = torch.tensor([3, 1, 0, 2])
    with torch.no_grad():
        torch.testing.assert_close(D(torch.cat([x[:, :3], x[:, 3:][:, perm]], 1)), D(x), atol=1e-5, rtol=1e-4)


def test_batch_of_three_equals_three_batches_of_one(G):
    x = make_input(3, 4, 32, 44, [[0, 1, 2, 3], [1], []])
    with torch.no_grad():
        batched = G(x)
        single = torch.cat([G(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)

    D = define_D(3, 8).eval()
    with torch.no_grad():
        torch.testing.assert_close(D(x), torch.cat([D(x[i : i + 1]) for i in range(3)]), atol=1e-5, rtol=1e-4)


def test_set_feature_is_the_sum_over_instances(G):
    """s = Σ encoder_seg(a_i): the set feature of two masks is the sum of the features of each."""
    x = make_input(1, 2, 32, 32, [[0, 1]])
    with torch.no_grad():
        f0 = G.encoder_seg(x[:, 3:4])
        f1 = G.encoder_seg(x[:, 4:5])
        enc_img = G.encoder_img(x[:, :3])
        expected_img = G.decoder_img(torch.cat([enc_img, f0 + f1], 1))
        torch.testing.assert_close(G(x)[:, :3], expected_img, atol=1e-5, rtol=1e-4)


def test_spectral_norm_keeps_top_singular_value_near_one():
    torch.manual_seed(0)
    D = define_D(3, 8).train()
    x = make_input(2, 2, 64, 64, [[0], [1]])
    for _ in range(30):  # power iterations converge over forwards
        D(x)
    conv = D.classifier[0]
    weight = conv.weight.detach().flatten(1)
    assert abs(torch.linalg.matrix_norm(weight, ord=2).item() - 1) < 0.05


def test_original_and_torch_spectral_norm_orders_agree_once_converged():
    torch.manual_seed(0)
    a = define_D(3, 8, spectral_norm="original").train()
    b = define_D(3, 8, spectral_norm="torch").train()
    b.load_state_dict(a.state_dict())
    x = make_input(1, 2, 48, 48, [[0, 1]])
    for _ in range(50):
        a(x), b(x)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), atol=1e-3, rtol=1e-3)


def test_default_init_of_d_is_pytorch_default_and_g_is_normal():
    torch.manual_seed(0)
    G = define_G(3, 3, 16)
    w = G.encoder_img[1].weight
    assert abs(w.std().item() - 0.02) < 0.002 and G.encoder_img[1].bias.abs().max() == 0
    D = define_D(3, 16)
    d_w = D.feature_img[2].parametrizations.weight.original
    # PyTorch's default (kaiming uniform, a=sqrt(5)) has std 1/sqrt(3 * fan_in); fan_in = 16 * 4 * 4.
    assert abs(d_w.std().item() - (1 / (3 * 256)) ** 0.5) < 0.003
    assert D.feature_img[2].bias.abs().max() > 0
    D_same = define_D(3, 16, init_D="same")
    assert abs(D_same.feature_img[2].parametrizations.weight.original.std().item() - 0.02) < 0.003


def test_bad_names_and_shapes_fail_loudly():
    with pytest.raises(ValueError, match="netG"):
        define_G(3, 3, 8, netG="unet_256")
    with pytest.raises(ValueError, match="netD"):
        define_D(3, 8, netD="pixel")
    with pytest.raises(ValueError, match="norm"):
        ResnetSetGenerator(norm="group")
    with pytest.raises(ValueError, match="multiples of 4"):
        ResnetSetGenerator(ngf=4)(torch.zeros(1, 4, 30, 32))
    with pytest.raises(ValueError, match="expects"):
        NLayerSetDiscriminator(ndf=4)(torch.zeros(1, 2, 32, 32))

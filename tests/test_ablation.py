"""The paper's ablation switches do what they say, and scripts/ablation.py runs them end to end.

- ``--lambda_ctx 0`` removes the context-preserving term: G's gradient is that of the loss without it.
- ``--translation onestep`` translates all ``--ins_max`` instances in one step: one G and one D update per batch,
  where sequential translation makes ``ins_max / ins_per`` of each; at test likewise one pass instead of several.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import ROOT, SMALL, make_test_opts, make_train_opts

import models.insta_gan_model as insta_gan_model
from models import create_model

if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: fastest on one thread

TINY = [
    "--ngf",
    "4",
    "--ndf",
    "4",
    "--n_blocks",
    "1",
    "--n_layers_D",
    "2",
    "--loadSizeH",
    "20",
    "--loadSizeW",
    "24",
    "--fineSizeH",
    "16",
    "--fineSizeW",
    "20",
]


def batch(n_instances: int = 4, h: int = 16, w: int = 20) -> dict:
    """One image per domain with ``n_instances`` (up to 8) non-overlapping rectangular instances each."""
    gen = torch.Generator().manual_seed(3)
    data = {}
    for side in "AB":
        segs = -torch.ones(1, n_instances, h, w)
        for k in range(n_instances):
            top, left = (k // 4) * 8, (k % 4) * 5
            segs[0, k, top : top + 4 + k % 3, left : left + 3] = 1.0
        data[side] = torch.rand(1, 3, h, w, generator=gen) * 2 - 1
        data[f"{side}_segs"] = segs
        data[f"{side}_paths"] = [f"{side}.png"]
    return data


def g_gradient(opt) -> tuple[list[torch.Tensor], dict]:
    """G's gradient of the first (only) sequential step of one batch, from the same initial weights each time."""
    torch.manual_seed(0)
    model = create_model(opt)
    model.setup(opt)
    model.set_input(batch())
    model.optimize_parameters()  # D's update after G's leaves G's gradients in place (its fakes are detached)
    grads = [p.grad.clone() for net in (model.netG_A, model.netG_B) for p in net.parameters()]
    return grads, model.get_current_losses()


def test_lambda_ctx_0_removes_the_context_term(toy_root, tmp_path, monkeypatch):
    args = (*TINY, "--translation", "onestep")
    without, losses = g_gradient(make_train_opts(toy_root, tmp_path, *args, "--lambda_ctx", "0"))
    assert losses["ctx_A"] == 0 and losses["ctx_B"] == 0
    with_ctx, losses_ctx = g_gradient(make_train_opts(toy_root, tmp_path, *args))
    assert losses_ctx["ctx_A"] > 0 and losses_ctx["ctx_B"] > 0
    assert any(not torch.allclose(a, b) for a, b in zip(without, with_ctx))  # the term matters when it is on

    # The loss without the term, by hand: the same model with the context loss replaced by a constant zero.
    monkeypatch.setattr(insta_gan_model, "context_loss", lambda *args, **kwargs: torch.zeros(()))
    reference, _ = g_gradient(make_train_opts(toy_root, tmp_path, *args))
    assert all(torch.equal(a, b) for a, b in zip(without, reference))


@pytest.mark.parametrize(
    "flags, steps",
    [
        (("--translation", "onestep"), 1),
        (("--ins_per", "2"), 2),
        (("--translation", "sequential", "--ins_per", "1"), 4),
    ],
)
def test_onestep_makes_one_update_per_batch_sequential_ins_max_over_ins_per(toy_root, tmp_path, flags, steps):
    opt = make_train_opts(toy_root, tmp_path, *TINY, "--ins_max", "4", *flags)
    assert opt.ins_per == 4 // steps
    torch.manual_seed(0)
    model = create_model(opt)
    model.setup(opt)
    count = {"G": 0, "D": 0}
    for key, optimizer in (("G", model.optimizer_G), ("D", model.optimizer_D)):
        optimizer.register_step_post_hook(lambda *args, key=key: count.__setitem__(key, count[key] + 1))
    model.set_input(batch(4))
    model.optimize_parameters()
    assert count == {"G": steps, "D": steps}


def test_onestep_at_test_translates_every_instance_in_one_pass(toy_root, tmp_path):
    seen = {}
    for mode, extra in (("onestep", ()), ("sequential", ("--ins_per", "2"))):
        opt = make_test_opts(toy_root, tmp_path, *TINY, "--ins_max", "8", "--translation", mode, *extra)
        torch.manual_seed(0)
        model = create_model(opt)
        inputs = []  # the instance slots of each call of G_A
        model.netG_A.register_forward_hook(lambda net, args, out, inputs=inputs: inputs.append(args[0].shape[1] - 3))
        model.set_input(batch(8))
        model.test()
        seen[mode] = inputs
    assert set(seen["onestep"]) == {8} and len(seen["onestep"]) <= 2  # A→B, and perhaps the cycle of B→A
    assert set(seen["sequential"]) == {2} and len(seen["sequential"]) >= 4  # one A→B pass per step at least


def test_onestep_with_a_contradicting_ins_per_is_an_error(toy_root, tmp_path, capsys):
    with pytest.raises(SystemExit):
        make_train_opts(toy_root, tmp_path, "--translation", "onestep", "--ins_max", "4", "--ins_per", "1")
    assert "--translation onestep translates all --ins_max (4)" in capsys.readouterr().err


@pytest.mark.slow
def test_ablation_script_end_to_end(toy_root, tmp_path, capsys):
    import ablation

    argv = [
        "--dataroot",
        str(toy_root),
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        "--results_dir",
        str(tmp_path / "res"),
        "--num_test",
        "2",
        "--test_ins_max",
        "4",
        *SMALL,
        *TINY,
        "--niter",
        "1",
        "--niter_decay",
        "0",
        "--max_dataset_size",
        "2",
        "--no_html",
        "--print_freq",
        "1000",
        "--ins_max",
        "4",
    ]
    rows = ablation.main([*argv, "--variants", "cyclegan", "instagan"])
    out = capsys.readouterr().out
    assert [(r["key"], r["test"]) for r in rows] == [
        ("cyclegan", "-"),
        ("instagan", "onestep"),
        ("instagan", "sequential"),
    ]
    assert "not an option of cycle_gan, dropped: --ins_max 4" in out
    for row in rows:
        assert not row.get("error"), row
        for d in ("AtoB", "BtoA"):
            assert 0 <= row["metrics"][d]["bg_l1"] <= 1 and 0 <= row["metrics"][d]["domain_score"] <= 1
    assert rows[1]["metrics"]["AtoB"]["mask_iou"] is not None and rows[0]["metrics"]["AtoB"]["mask_iou"] is None
    record = json.loads((tmp_path / "res" / "ablation_ablation" / "ablation.json").read_text())
    assert [r["metrics"]["AtoB"]["bg_l1"] for r in record["rows"]] == [r["metrics"]["AtoB"]["bg_l1"] for r in rows]
    page = (tmp_path / "res" / "ablation_ablation" / "index.html").read_text()
    assert page.count("<tr>") == 1 + 3 * 2 and 'href="../sequential/ablation_instagan/test_latest/index.html"' in page
    table = out[out.rindex("variant") :]
    assert table.count("AtoB") == 3 and table.count("BtoA") == 3

    # A re-run trains nothing again (it only tests and evaluates).
    weights = tmp_path / "ck" / "ablation_cyclegan" / "latest_net_G_A.pth"
    stamp = weights.stat().st_mtime_ns
    ablation.main([*argv, "--variants", "cyclegan"])
    assert "[cyclegan] already trained" in capsys.readouterr().out and weights.stat().st_mtime_ns == stamp


def test_ablation_variants_get_the_options_they_say(toy_root, tmp_path):
    """Every variant's train.py arguments, as the script builds them, parse to the variant's switches."""
    import ablation

    from options.train_options import TrainOptions

    args, extra = ablation.parse_args(["--dataroot", str(toy_root), *SMALL, "--ins_max", "4", "--ins_per", "1"])
    expected = {
        "cyclegan": ("cycle_gan", None, None),
        "insta_noctx": ("insta_gan", 0.0, 4),
        "insta_onestep": ("insta_gan", 1.0, 4),
        "instagan": ("insta_gan", 1.0, 1),
    }
    for key, variant in ablation.VARIANTS.items():
        argv = ablation.variant_train_argv(key, variant, args, extra, log=lambda *a: None)
        opt = TrainOptions().parse(argv)
        got = (opt.model, getattr(opt, "lambda_ctx", None), getattr(opt, "ins_per", None))
        assert got == expected[key], key
    assert ablation.without(["--a", "1", "--b=2", "--c", "3"], "--b") == ["--a", "1", "--c", "3"]
    assert ablation.without(["--a", "1", "--b", "2"], "--a") == ["--b", "2"]


@pytest.mark.parametrize("flag", [False, True])
def test_ablation_eval_reaches_test_py_only(toy_root, tmp_path, monkeypatch, flag):
    import ablation

    import test

    seen = []
    monkeypatch.setattr(test, "main", lambda argv: seen.append(argv) or str(tmp_path / "index.html"))
    args, extra = ablation.parse_args(["--dataroot", str(toy_root), *SMALL, *(["--eval"] if flag else [])])
    assert "--eval" not in extra  # train.py has no --eval
    variant = ablation.VARIANTS["instagan"]
    train_argv = ablation.variant_train_argv("instagan", variant, args, extra, log=lambda *a: None)
    ablation.test_variant("instagan", variant, "n", train_argv, "sequential", args, log=lambda *a: None)
    assert ("--eval" in seen[0]) is flag


@pytest.fixture
def trained(monkeypatch) -> list[list[str]]:
    """train.main stubbed: the argument lists it was called with."""
    import train

    calls = []
    monkeypatch.setattr(train, "main", calls.append)
    return calls


def test_ablation_never_trains_over_another_run(toy_root, tmp_path, trained):
    """scripts/toy.sh's checkpoints/toy_instagan is what --name_prefix toy_ would name the instagan variant."""
    import ablation

    ck = tmp_path / "ck"
    other = ck / "toy_instagan" / "latest_net_G_A.pth"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"someone else's weights")
    args, extra = ablation.parse_args(
        ["--dataroot", str(toy_root), "--checkpoints_dir", str(ck), "--name_prefix", "toy_", *SMALL]
    )
    with pytest.raises(RuntimeError, match=r"toy_instagan holds a run that ablation.py did not train.*--retrain"):
        ablation.train_variant("instagan", ablation.VARIANTS["instagan"], args, extra, log=lambda *a: None)
    assert other.read_bytes() == b"someone else's weights" and sorted(p.name for p in other.parent.iterdir()) == [
        "latest_net_G_A.pth"
    ]
    assert not trained

    # --retrain trains over it, and says so.
    args.retrain = True
    lines = []
    ablation.train_variant("instagan", ablation.VARIANTS["instagan"], args, extra, log=lines.append)
    assert len(trained) == 1 and any("warning: --retrain trains over" in line for line in lines)


def test_ablation_resumes_its_own_interrupted_run(toy_root, tmp_path, trained):
    """A folder ablation.py made (its marker, unfinished) with checkpoints in it is resumed, not refused."""
    import ablation

    args, extra = ablation.parse_args(["--dataroot", str(toy_root), "--checkpoints_dir", str(tmp_path), *SMALL])
    variant = ablation.VARIANTS["instagan"]
    argv = ablation.variant_train_argv("instagan", variant, args, extra, log=lambda *a: None)
    folder = tmp_path / "ablation_instagan"
    folder.mkdir()
    (folder / ablation.MARKER).write_text(json.dumps({"argv": argv, "finished": False}))
    for name in ("latest_state.pth", "latest_net_G_A.pth"):
        (folder / name).write_bytes(b"")
    ablation.train_variant("instagan", variant, args, extra, log=lambda *a: None)
    assert trained == [[*argv, "--continue_train"]]
    assert json.loads((folder / ablation.MARKER).read_text())["finished"] is True

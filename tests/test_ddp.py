"""DistributedDataParallel on gloo/CPU: 2 ranks x batch 1 must train like 1 process x batch 2.

The images are chosen so that the ranks disagree about instances: at some steps one rank's group is empty (its
sample sits the step out with weight 0) and one rank has no mask at all (its generators run without any mask, so
their mask branch only gets DDP's zero gradient). Every run must finish — no rank may skip a collective.

Exactness is checked in float64 (tests/ddp_worker.py): there DDP equals the single process to ~1e-12. In float32,
Adam's first steps are lr * g / |g|, so gradient elements that are float noise (the biases before instance norm,
and a few near-zero weights) move by ±lr whichever way the noise falls; the generators of the float32 runs through
train.py therefore match to a looser tolerance, still far below what a wrong reduction or a rank-dependent state
gives (a spectral-norm u/v that drifted between ranks made the outputs differ by 1e-1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image

H, W = 32, 40
# Instances per image; rank 0 reads image 0, rank 1 image 1 (one batch of 2, three sequential steps of 2 instances).
# A: rank 1's image has no instance at all; steps 2 and 3 run on rank 0 only. B: step 2 runs on rank 0 only, step 3
# on none. So at step 3 rank 1 has no mask anywhere (G's mask branch and D's feature_seg get DDP's zero gradient),
# and at steps 2-3 its sample sits out with weight 0.
COUNTS_A = [5, 0]
COUNTS_B = [3, 1]


def make_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for domain, counts in (("A", COUNTS_A), ("B", COUNTS_B)):
        (root / f"train{domain}").mkdir(parents=True)
        (root / f"train{domain}_seg").mkdir(parents=True)
        for i, n in enumerate(counts):
            Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / f"train{domain}" / f"{i}.png")
            for k in range(n):
                mask = np.zeros((H, W), np.uint8)
                y, x = rng.integers(0, H - 12), rng.integers(0, W - 12)
                mask[y : y + 6 + 2 * k, x : x + 12 - 2 * k] = 255
                Image.fromarray(mask).save(root / f"train{domain}_seg" / f"{i}_{k}.png")
    return root


def train_args(dataroot: Path, checkpoints: Path, name: str) -> list[str]:
    # Deterministic data (no crop, no flip, B in order) and no image pool, so both runs see the same batches.
    return [
        "--dataroot",
        str(dataroot),
        "--checkpoints_dir",
        str(checkpoints),
        "--name",
        name,
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--loadSizeH",
        str(H),
        "--loadSizeW",
        str(W),
        "--fineSizeH",
        str(H),
        "--fineSizeW",
        str(W),
        "--resize_or_crop",
        "resize",
        "--no_flip",
        "--serial_batches",
        "--pool_size",
        "0",
        "--num_threads",
        "0",
        "--display_id",
        "0",
        "--no_html",
        "--batch_size",
        "2",
        "--niter",
        "1",
        "--niter_decay",
        "0",
        "--ins_max",
        "6",
        "--ins_per",
        "2",
        "--print_freq",
        "2",
        "--seed",
        "3",
    ]


def run(cmd: list[str], env: dict | None = None) -> str:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}"
    return proc.stdout


def generator_outputs(checkpoints: Path, name: str) -> dict[str, torch.Tensor]:
    """G_A and G_B of a run's 'latest' checkpoint on fixed inputs with 0, 1 and 3 instances."""
    from models.generators import define_G

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3 + 3, H, W, generator=g) * 2 - 1
    x[:, 3:] = -1
    x[1, 3, 4:20, 6:30] = 1
    for k in range(3):
        x[2, 3 + k, 2 + 8 * k : 10 + 8 * k, 4 : 20 + 5 * k] = 1
    out = {}
    for net in ("G_A", "G_B"):
        G = define_G(3, 3, 4)
        G.load_state_dict(torch.load(checkpoints / name / f"latest_net_{net}.pth", weights_only=True))
        with torch.no_grad():
            out[net] = G(x)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The single-process reference run, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("ddp")
    dataroot = make_dataset(tmp / "data")
    checkpoints = tmp / "checkpoints"
    run([sys.executable, "train.py", *train_args(dataroot, checkpoints, "single"), "--gpu_ids", "-1"])
    return dataroot, checkpoints, generator_outputs(checkpoints, "single")


def assert_same_outputs(ours: dict, reference: dict, tol: float = 3e-2) -> None:
    for net in reference:
        diff = (ours[net] - reference[net]).abs().max().item()
        assert diff < tol, f"{net}: DDP outputs differ from the single process by {diff:.2e}"


@pytest.mark.slow
def test_ddp_equals_one_process_in_float64(runs):
    """One batch, three sequential steps of G and D updates, in float64: DDP == one process to float64 noise."""
    dataroot, checkpoints, _ = runs
    args = [*train_args(dataroot, checkpoints, "f64"), "--gpu_ids", "-1"]
    run([sys.executable, "tests/ddp_worker.py", str(checkpoints / "single64.pt"), *args])
    run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "tests/ddp_worker.py",
            str(checkpoints / "ddp64.pt"),
            *args,
        ]
    )
    single, ddp = (torch.load(checkpoints / f"{n}.pt", weights_only=True) for n in ("single64", "ddp64"))
    for name, value in single["losses"].items():
        assert abs(ddp["losses"][name] - value) < 1e-9 * max(1.0, abs(value)), name
    for net, out in single["outputs"].items():
        diff = (ddp["outputs"][net] - out).abs().max().item()
        assert diff < 1e-9, f"{net}: float64 DDP outputs differ from the single process by {diff:.2e}"


@pytest.mark.slow
def test_torchrun_two_ranks_match_one_process(runs):
    dataroot, checkpoints, reference = runs
    out = run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "train.py",
            *train_args(dataroot, checkpoints, "ddp"),
            "--gpu_ids",
            "-1",
        ]
    )
    assert out.count("End of epoch 1 / 1") == 1, "only rank 0 prints"
    assert_same_outputs(generator_outputs(checkpoints, "ddp"), reference)
    log = (checkpoints / "ddp" / "loss_log.txt").read_text()
    assert "D_A" in log and "nan" not in log.lower()


@pytest.mark.slow
def test_gpu_ids_launch_on_cpu_workers(runs):
    """``--gpu_ids 0,1`` starts two DDP workers through torch's launcher API; INSTAGAN_CPU_WORKERS=1 makes them
    gloo CPU workers on a machine without GPUs."""
    dataroot, checkpoints, reference = runs
    run(
        [sys.executable, "train.py", *train_args(dataroot, checkpoints, "launch"), "--gpu_ids", "0,1"],
        env={"INSTAGAN_CPU_WORKERS": "1", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert_same_outputs(generator_outputs(checkpoints, "launch"), reference)

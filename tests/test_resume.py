"""Exact resume: the training state round trip, the resumable data order, SIGTERM, and (slow) SIGKILL from outside
followed by --continue_train, which must give the weights of a run that was never stopped."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY, make_train_opts
from conftest import latest_networks as networks

from data import create_dataloader, create_dataset
from data.sampler import ResumableSampler
from models import create_model
from training.state import load_training_state, save_training_state

pytestmark = pytest.mark.usefixtures("one_thread")


def train_argv(root: Path, checkpoints: Path, *extra: str) -> list[str]:
    return ["--dataroot", str(root), "--checkpoints_dir", str(checkpoints), "--name", "r", *TINY, *extra]


def child_env() -> dict:
    # One thread per process: the same arithmetic in every run, and no oversubscription on a busy machine.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start(*argv: str) -> subprocess.Popen:
    """A training process (one thread) started in the repository; its output is read from ``.stdout``."""
    return subprocess.Popen(
        list(argv), cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(*argv: str) -> subprocess.CompletedProcess:
    """A training process (one thread) run to its end."""
    return subprocess.run(list(argv), cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------------------------------------ fast, in-process


def test_training_state_round_trip_is_weights_only_and_complete(tiny_root, tmp_path):
    opt = make_train_opts(tiny_root, tmp_path, *TINY, "--pool_size", "2")
    model = create_model(opt)
    model.setup(opt)
    loader = create_dataloader(opt, create_dataset(opt))
    for _, data in zip(range(2), loader):
        model.set_input(data)
        model.optimize_parameters()
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    position = dict(epoch=1, batches_done=2, epoch_iter=2, total_iters=2, bad_samples=[], skipped_batches=0)
    path = save_training_state(model, opt, position)
    expected_draws = (random.random(), np.random.rand(), torch.rand(1))

    raw = torch.load(path, weights_only=True)  # only tensors and plain values inside
    assert {"networks", "optimizers", "schedulers", "pools", "rng", "options", "epoch", "total_iters"} <= set(raw)
    assert raw["options"]["ngf"] == 4 and len(raw["pools"]["fake_A_pool"]["images"]) == 2

    torch.manual_seed(99)
    other = create_model(opt)
    other.setup(opt)
    state = load_training_state(path)
    other.load_training_state_dict(state, str(path))
    for name, net in model.networks().items():
        for (k, v), w in zip(net.state_dict().items(), other.networks()[name].state_dict().values()):
            assert torch.equal(v, w), f"{name}.{k}"
    for o1, o2 in zip(model.optimizers, other.optimizers):
        s1, s2 = o1.state_dict()["state"], o2.state_dict()["state"]
        assert all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1)
    assert all(torch.equal(a, b) for a, b in zip(model.fake_B_pool.images, other.fake_B_pool.images))
    from training.state import set_rng_state

    set_rng_state(state["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected_draws


def test_sampler_order_depends_on_seed_and_epoch_only_and_skips_exactly():
    a = ResumableSampler(10, shuffle=True, seed=3)
    a.set_epoch(2)
    full = list(a)
    b = ResumableSampler(10, shuffle=True, seed=3)
    b.set_epoch(5)
    list(b)  # history does not matter
    b.set_epoch(2)
    b.skip(4)
    assert list(b) == full[4:] and len(b) == 6
    a.set_epoch(3)
    assert [i for i, _ in a] != [i for i, _ in full]  # another epoch, another order
    ranks = [ResumableSampler(10, True, 3, num_replicas=3, rank=r) for r in range(3)]
    for r in ranks:
        r.set_epoch(2)
    shards = [i for r in ranks for i, _ in r]
    assert len(shards) == 12 and set(shards) == set(range(10))


def test_dataset_draws_from_the_sample_seed_and_leaves_global_generators_alone(toy_root, tmp_path):
    dataset = create_dataset(make_train_opts(toy_root, tmp_path))
    torch.manual_seed(0)
    before = torch.get_rng_state()
    one, two = dataset[(1, 1234)], dataset[(1, 1234)]
    assert torch.equal(torch.get_rng_state(), before)
    assert one["B_paths"] == two["B_paths"]
    assert torch.equal(one["A"], two["A"]) and torch.equal(one["B_segs"], two["B_segs"])


def test_mid_epoch_batches_do_not_depend_on_workers_or_history(tiny_root, tmp_path):
    """What a resumed run reads: the epoch's batches after the first k, whatever ran before and with any workers."""

    def batches(threads: str, epoch: int, skip: int, warm_up: bool) -> list:
        opt = make_train_opts(tiny_root, tmp_path, *TINY, "--num_threads", threads)
        loader = create_dataloader(opt, create_dataset(opt), seed=7)
        if warm_up:  # an earlier epoch read in full, as an uninterrupted run would have
            loader.sampler.set_epoch(epoch - 1)
            list(loader)
        loader.sampler.set_epoch(epoch)
        loader.sampler.skip(skip)
        return [(b["A_paths"], b["B_paths"], b["A"], b["B_segs"]) for b in loader]

    whole = batches("0", 2, 0, warm_up=True)
    for resumed in (batches("0", 2, 1, warm_up=False), batches("2", 2, 1, warm_up=False)):
        assert len(resumed) == len(whole) - 1
        for (pa, pb, a, s), (qa, qb, b, t) in zip(whole[1:], resumed):
            assert pa == qa and pb == qb and torch.equal(a, b) and torch.equal(s, t)


def test_sigterm_saves_latest_and_exits_cleanly(tiny_root, tmp_path, monkeypatch):
    """The signal lands mid-batch; the batch completes, 'latest' is written, the exit status is 128 + 15."""
    import train
    from models.insta_gan_model import InstaGANModel

    original, calls = InstaGANModel.optimize_parameters, []

    def optimize_and_signal(self):
        original(self)
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(InstaGANModel, "optimize_parameters", optimize_and_signal)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        train.main(train_argv(tiny_root, tmp_path, "--niter", "1", "--niter_decay", "1", "--save_latest_freq", "100"))
    assert stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == handler  # the training's handler is gone again
    state = load_training_state(tmp_path / "r" / "latest_state.pth")
    assert (state["epoch"], state["batches_done"], state["total_iters"]) == (1, 2, 2)
    assert (tmp_path / "r" / "latest_net_G_A.pth").is_file()


def test_continue_train_from_network_only_checkpoint_says_what_is_lost(tiny_root, tmp_path, capsys):
    import train

    argv = train_argv(tiny_root, tmp_path, "--niter", "1", "--niter_decay", "0", "--max_dataset_size", "1")
    train.main(argv)
    (tmp_path / "r" / "latest_state.pth").unlink()  # as left by the 2018 code: network files only
    train.main([*argv, "--continue_train", "--epoch_count", "2", "--niter", "2"])
    out = capsys.readouterr().out
    assert "only the networks latest_net_*.pth were loaded" in out and "at epoch 2 (--epoch_count)" in out


def test_same_seed_same_weights_other_seed_other_weights(tiny_root, tmp_path):
    import train

    try:
        for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
            extra = f"--name {name} --seed {seed} --deterministic --niter 1 --niter_decay 0 --max_dataset_size 2"
            train.main(train_argv(tiny_root, tmp_path, *extra.split()))
    finally:
        torch.use_deterministic_algorithms(False)
    a, b, c = (networks(tmp_path / name) for name in "abc")
    assert all(torch.equal(a["G_A"][k], b["G_A"][k]) for k in a["G_A"])
    assert not all(torch.equal(a["G_A"][k], c["G_A"][k]) for k in a["G_A"])


def test_full_disk_keeps_the_previous_checkpoint(tiny_root, tmp_path, monkeypatch):
    import util.util
    from util.checkpoint import CheckpointError

    opt = make_train_opts(tiny_root, tmp_path, *TINY)
    model = create_model(opt)
    model.setup(opt)
    position = {"epoch": 1, "batches_done": 0, "epoch_iter": 0, "total_iters": 0}
    path = save_training_state(model, opt, position)
    before = path.read_bytes()

    def no_space(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(util.util.torch, "save", no_space)
    with pytest.raises(CheckpointError, match="No space left on device.*the previous file is intact"):
        save_training_state(model, opt, {**position, "total_iters": 5})
    assert path.read_bytes() == before and not list(path.parent.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------- slow, real processes


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}):\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the training process")
        time.sleep(0.01)


def resume_then_compare(
    cmd: list[str], run: subprocess.Popen, root: Path, common: list[str], whole: Path, parts: Path, saved: dict
) -> None:
    """Resume the killed run in ``parts`` (its state was ``saved``) with ``cmd``; once the uninterrupted ``run`` in
    ``whole`` ends too, every weight of the two must be equal."""
    resumed = finish(*cmd, *train_argv(root, parts, *common, "--continue_train"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state = parts / "r" / "latest_state.pth"
    assert f"resuming {state} at epoch {saved['epoch']}, batch {saved['batches_done']}" in resumed.stdout
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out
    a, b = networks(whole / "r"), networks(parts / "r")
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key} differs after resume"


@pytest.mark.slow
def test_sigkill_then_continue_train_equals_an_uninterrupted_run(tiny_root, tmp_path):
    """N+M iterations in one go vs N, SIGKILL from outside, then --continue_train for M: identical weights."""
    common = ["--niter", "1", "--niter_decay", "1", "--save_latest_freq", "2", "--deterministic", "--pool_size", "2"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    cmd = [sys.executable, "train.py"]
    run = start(*cmd, *train_argv(tiny_root, whole, *common))

    state = parts / "r" / "latest_state.pth"
    victim = start(*cmd, *train_argv(tiny_root, parts, *common))
    wait_for(state.is_file, victim)
    victim.send_signal(signal.SIGKILL)  # no chance to save anything more
    victim.wait()
    saved = load_training_state(state)
    assert saved["total_iters"] < 6, "the run finished before it could be killed"

    resume_then_compare(cmd, run, tiny_root, common, whole, parts, saved)
    sa, sb = (load_training_state(p / "r" / "latest_state.pth") for p in (whole, parts))
    assert sa["total_iters"] == sb["total_iters"] == 6 and sa["epoch"] == sb["epoch"] == 3
    for oa, ob in zip(sa["optimizers"], sb["optimizers"]):
        assert all(torch.equal(oa["state"][i]["exp_avg_sq"], ob["state"][i]["exp_avg_sq"]) for i in oa["state"])
    pool_a, pool_b = sa["pools"]["fake_B_pool"]["images"], sb["pools"]["fake_B_pool"]["images"]
    assert len(pool_a) == len(pool_b) == 2 and all(torch.equal(x, y) for x, y in zip(pool_a, pool_b))


KILL_IN_WRITE = """
import os, sys, time
real_fsync, seen = os.fsync, []
def fsync(fd):
    real_fsync(fd)
    name = os.readlink(f"/proc/self/fd/{fd}")
    if os.path.basename(name).startswith(".latest_state.pth.") and name.endswith(".tmp"):
        seen.append(name)
        if len(seen) == 2:  # the second 'latest' is on disk as a temporary file, not yet renamed
            open(sys.argv[1], "w").close()
            time.sleep(600)
os.fsync = fsync
import train
train.main(sys.argv[2:])
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name the file being written")
def test_kill_during_a_checkpoint_write_leaves_latest_loadable(tiny_root, tmp_path):
    marker = tmp_path / "writing"
    argv = train_argv(tiny_root, tmp_path, "--niter", "1", "--niter_decay", "0", "--save_latest_freq", "1")
    proc = start(sys.executable, "-c", KILL_IN_WRITE, str(marker), *argv)
    wait_for(marker.is_file, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    folder = tmp_path / "r"
    assert list(folder.glob(".latest_state.pth.*.tmp")), "the kill should have left the unfinished write behind"
    state = load_training_state(folder / "latest_state.pth")  # the previous 'latest', whole
    assert state["total_iters"] == 1
    opt = make_train_opts(tiny_root, tmp_path, *TINY)
    model = create_model(opt)
    model.setup(opt)
    model.load_training_state_dict(state, "latest_state.pth")


def descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (Linux /proc)."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, children.read_text().split()):
            found += [child, *descendants(child)]
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find the DDP workers")
def test_ddp_sigkill_then_continue_train_equals_an_uninterrupted_run(tiny_root, tmp_path):
    """Two gloo ranks: every rank's random state and image pools are saved, so the resumed run is exact too."""
    common = "--niter 1 --niter_decay 1 --batch_size 2 --save_latest_freq 2 --deterministic --pool_size 2".split()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run = start(*torchrun, *train_argv(tiny_root, whole, *common))
    victim = start(*torchrun, *train_argv(tiny_root, parts, *common))
    state = parts / "r" / "latest_state.pth"
    wait_for(state.is_file, victim)
    for pid in [victim.pid, *descendants(victim.pid)]:  # the launcher and its workers, all at once
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    victim.wait()
    saved = load_training_state(state)
    assert len(saved["ranks"]) == 2 and saved["total_iters"] < 6

    resume_then_compare(torchrun, run, tiny_root, common, whole, parts, saved)

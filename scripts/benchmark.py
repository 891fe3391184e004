"""Benchmark InstaGAN training: seconds per iteration, images/s, peak memory, and (on a GPU) TFLOP/s.

Each configuration runs in a fresh subprocess, so peak memory (CUDA max allocated on a GPU, peak RSS on the CPU)
belongs to that configuration alone. Inputs are synthetic: every image has exactly ``n`` non-empty instances, so
every sequential step runs.

    python scripts/benchmark.py                                # default model, 64x64, sweep n = 2 4 8 16
    python scripts/benchmark.py --instances 4 --modes sequential --iters 10    # one configuration
    python scripts/benchmark.py --gpu_ids 0 --amp bf16 --json bench.json
    python scripts/benchmark.py --compare-original ../instagan --instances 4 --modes sequential --threads 2

``--compare-original PATH`` (a checkout of the 2018 code) times the 2018 model on the same batches, alternating
fresh subprocesses (ours, original, ours, original, ... for ``--rounds`` rounds) so that a busy machine slows
both alike, and prints both iterations per second, their ratio and peak memory. ``--dataroot`` takes the batches
from a dataset (in file order, as ``--serial_batches``) instead of synthetic images. The ratio is of wall-clock
medians; each round also prints its iterations' wall times, CPU time, the threads used, page faults and the load
average, since a machine busy with other jobs stretches wall time and (spinning OpenMP threads) CPU time alike:
compare on a quiet machine, at ``--threads 1`` or at as many threads as there are idle cores. On the CPU
train.py and this script's runs of ours keep freed memory in the heap (``util.memory.keep_freed_memory_in_heap``);
``--same-allocator`` does the same in the 2018 code's process.

Modes: ``sequential`` translates the instances two at a time (``--ins_per 2 --ins_max n``, the paper's memory
trick); ``onestep`` translates all of them at once (``--ins_per n --ins_max n``). Sequential memory should stay
flat in n; one-step memory grows with n.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Dense peak TFLOP/s by device name fragment: (fp32 without tensor cores, tf32, bf16/fp16 tensor cores).
GPU_PEAK_TFLOPS = {
    "H200": (67.0, 494.7, 989.4),
    "H100 SXM": (67.0, 494.7, 989.4),
    "H100 PCIe": (51.2, 378.0, 756.0),
    "H100": (67.0, 494.7, 989.4),
    "A100": (19.5, 156.0, 312.0),
    "L40S": (91.6, 183.0, 362.0),
    "A10G": (31.2, 62.5, 125.0),
    "V100": (15.7, 15.7, 125.0),
    "T4": (8.1, 8.1, 65.0),
}


def device_peak(name: str, amp: str, tf32: bool) -> float | None:
    for key, (fp32, tf32_peak, half) in GPU_PEAK_TFLOPS.items():
        if key in name:
            return half if amp != "none" else (tf32_peak if tf32 else fp32)
    return None


def make_batch(batch: int, n: int, size: int, max_instances: int, seed: int = 0):
    """Synthetic images in [-1, 1] and ``n`` non-empty rectangular masks each (the rest of the slots empty)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    data = {}
    for d in "AB":
        data[d] = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
        segs = -torch.ones(batch, max_instances, size, size)
        for b in range(batch):
            for k in range(n):
                h, w = (int(v) for v in torch.randint(size // 8, size // 2, (2,), generator=g))
                y, x = (int(v) for v in torch.randint(0, size - size // 2, (2,), generator=g))
                segs[b, k, y : y + h, x : x + w] = 1.0
        data[f"{d}_segs"] = segs
        data[f"{d}_paths"] = [f"synthetic_{d}{b}" for b in range(batch)]
    return data


def options(cfg: dict, dataroot: str = "unused"):
    """Our training options for a configuration (the 2018 model is built from the same ones)."""
    from options.train_options import TrainOptions

    n, per, size = cfg["instances"], cfg["ins_per"], cfg["size"]
    args = [
        "--dataroot",
        dataroot,
        "--gpu_ids",
        cfg["gpu_ids"],
        "--ngf",
        str(cfg["ngf"]),
        "--ndf",
        str(cfg["ndf"]),
        "--loadSizeH",
        str(size),
        "--loadSizeW",
        str(size),
        "--fineSizeH",
        str(size),
        "--fineSizeW",
        str(size),
        "--ins_max",
        str(n),
        "--ins_per",
        str(per),
        "--max_instances",
        str(max(20, n)),
        "--serial_batches",
        "--batch_size",
        str(cfg["batch_size"]),
        "--display_id",
        "0",
        "--checkpoints_dir",
        cfg["tmp"],
        "--num_threads",
        "0",
    ]
    for flag in ("amp",):
        if cfg[flag] != "none":
            args += [f"--{flag}", cfg[flag]]
    for flag in ("channels_last", "compile"):
        if cfg[flag]:
            args.append(f"--{flag}")
    return TrainOptions().parse(args)


def dataset_batches(cfg: dict, dataroot: str, count: int) -> list[dict]:
    """The first ``count`` batches of a dataset in file order (``--serial_batches``), repeating it if needed."""
    from data import create_dataloader, create_dataset

    opt = options(cfg, dataroot)
    loader = create_dataloader(opt, create_dataset(opt))
    batches: list[dict] = []
    while len(batches) < count:
        for batch in loader:
            batches.append(batch)
            if len(batches) == count:
                break
    return batches


def build_original(cfg: dict, opt):
    """The 2018 model, imported from ``cfg['original']`` with compare_with_original's run-time shims."""
    from argparse import Namespace

    sys.path.insert(0, str(ROOT / "scripts"))
    import compare_with_original as cwo

    module = cwo.load_original(Path(cfg["original"]))
    return cwo.build_original(module, Namespace(**{**vars(opt), "gpu_ids": []}), adam04=False)


def run_child(cfg: dict) -> dict:
    """One configuration, in this process: build the model (ours, or with ``impl='original'`` the 2018 code's),
    warm up, time ``iters`` iterations."""
    import torch

    sys.path.insert(0, str(ROOT))
    from models import create_model
    from options.base_options import resolve_device
    from util.memory import keep_freed_memory_in_heap

    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg["tf32"]
    opt = options(cfg)
    device = resolve_device(opt)
    torch.manual_seed(0)
    if cfg.get("impl", "ours") == "original":
        if device.type != "cpu":
            raise SystemExit("--compare-original runs on the CPU only (the 2018 code's device handling is not shimmed)")
        if cfg.get("same_allocator"):  # the heap setting train.py makes on the CPU, for the 2018 code too
            keep_freed_memory_in_heap()
        model = build_original(cfg, opt)
    else:
        if device.type == "cpu":
            keep_freed_memory_in_heap()  # as train.py does
        model = create_model(opt, device)
    if cfg.get("data"):
        batches = torch.load(cfg["data"])
    else:
        batches = [make_batch(cfg["batch_size"], cfg["instances"], cfg["size"], opt.max_instances)]
    cuda = device.type == "cuda"
    counter = {"i": 0}

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step():
        model.set_input(batches[counter["i"] % len(batches)])
        counter["i"] += 1
        model.optimize_parameters()

    # The warm-up iterations timed too: under --compile they hold the compile time.
    warmup_times, warmup_cpu_times = [], []
    for _ in range(cfg["warmup"]):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        warmup_times.append(time.perf_counter() - t0)
        warmup_cpu_times.append(time.process_time() - c0)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, cpu_times, loads = [], [], [os.getloadavg()[0]]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cfg["iters"]):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        loads.append(os.getloadavg()[0])
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / max(cfg["iters"], 1)
    times.sort()
    cpu_times.sort()
    s_iter = times[len(times) // 2]  # median
    result = dict(cfg)
    result.update(
        times=times,
        warmup_times=warmup_times,
        warmup_cpu_times=warmup_cpu_times,
        warmup_s=sum(warmup_times),
        s_per_iter=s_iter,
        s_per_iter_min=times[0],
        # CPU time of all threads. Not a substitute for wall time on a busy machine: OpenMP threads that wait for
        # a descheduled peer spin, which inflates it (the 68 CPU s per iteration of an earlier run at load 12).
        cpu_s_per_iter=cpu_times[len(cpu_times) // 2],
        threads=torch.get_num_threads(),
        load_avg=loads,  # 1-minute load average before the timed iterations and after each
        page_faults_per_iter=faults,
        images_per_s=cfg["batch_size"] / s_iter,
        peak_mem_mb=(torch.cuda.max_memory_allocated() if cuda else _peak_rss()) / 2**20,
        mem_kind="cuda_max_allocated" if cuda else "peak_rss",
        device=torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
    )
    if cfg["flops"] or cuda:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            step()
        flops = counter.get_total_flops()
        result["tflop_per_iter"] = flops / 1e12
        result["tflops"] = flops / 1e12 / s_iter
        peak = device_peak(result["device"], cfg["amp"], cfg["tf32"]) if cuda else None
        if peak:
            result["device_peak_tflops"] = peak
            result["ratio_to_peak"] = result["tflops"] / peak
    return result


def _peak_rss() -> int:
    """Peak resident set size of this process in bytes (Linux reports KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def table(results: list[dict]) -> str:
    cols = [
        ("mode", "{}"),
        ("instances", "{}"),
        ("ins_per", "{}"),
        ("batch_size", "{}"),
        ("amp", "{}"),
        ("warmup_s", "{:.1f}"),
        ("s_per_iter", "{:.3f}"),
        ("cpu_s_per_iter", "{:.3f}"),
        ("images_per_s", "{:.2f}"),
        ("peak_mem_mb", "{:.0f}"),
        ("tflops", "{:.2f}"),
        ("ratio_to_peak", "{:.1%}"),
    ]
    rows = [[name for name, _ in cols]]
    for r in results:
        rows.append([fmt.format(r[name]) if r.get(name) is not None else "-" for name, fmt in cols])
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, nargs="+", default=[2, 4, 8, 16], help="instances per image")
    p.add_argument("--modes", nargs="+", default=["sequential", "onestep"], choices=("sequential", "onestep"))
    p.add_argument("--size", type=int, default=64, help="image height and width")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--gpu_ids", type=str, default="-1", help="'-1' for the CPU, '0' for the first GPU")
    p.add_argument("--amp", type=str, default="none", choices=("none", "bf16", "fp16"))
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convolutions on Ampere+ GPUs")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first (their wall time is reported)")
    p.add_argument("--iters", type=int, default=3, help="timed iterations (the median is reported)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--flops", action="store_true", help="count FLOPs on the CPU too (always on a GPU)")
    p.add_argument("--json", type=str, default="", help="write the results here")
    p.add_argument(
        "--compare-original",
        "--compare_original",
        dest="original",
        type=str,
        default="",
        help="a checkout of the 2018 code (sangwoomo/instagan): time it on the same batches, alternating",
    )
    p.add_argument("--rounds", type=int, default=3, help="with --compare-original: alternations ours / original")
    p.add_argument(
        "--same-allocator",
        "--same_allocator",
        dest="same_allocator",
        action="store_true",
        help="with --compare-original: give the 2018 code's process the heap setting our model makes on the CPU "
        "(util.memory.keep_freed_memory_in_heap), to see the ratio without it",
    )
    p.add_argument("--dataroot", type=str, default="", help="batches from this dataset instead of synthetic ones")
    p.add_argument("--_child", type=str, default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        print("RESULT " + json.dumps(run_child(json.loads(args._child))), flush=True)
        return []

    import tempfile

    if args.original:
        return compare_original(args)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            for n in args.instances:
                cfg = child_config(args, mode, n, tmp)
                r = run_subprocess(cfg, f"{mode} n={n}")
                if r is None:
                    continue
                results.append(r)
                print(f"{mode:>10} n={n:<3} {r['s_per_iter']:.3f} s/iter  {r['peak_mem_mb']:.0f} MiB", flush=True)
    print(table(results))
    if results:
        print(
            f"device: {results[0]['device']}; torch threads: {args.threads or 'default'}; memory: "
            f"{results[0]['mem_kind']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


def child_config(args, mode: str, n: int, tmp: str, **extra) -> dict:
    skip = ("instances", "modes", "json", "_child", "rounds", "dataroot")
    cfg = {k: v for k, v in vars(args).items() if k not in skip}
    cfg.update(mode=mode, instances=n, tmp=tmp, ins_per=n if mode == "onestep" else min(2, n), **extra)
    return cfg


def child_env(cfg: dict) -> dict:
    """The child's environment; with ``--threads N`` OpenMP and MKL start N threads (torch.set_num_threads in the
    child sets the same), so no idle pool of the default size competes with the timed threads."""
    env = os.environ.copy()
    if cfg.get("threads"):
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(cfg["threads"])
    return env


def run_subprocess(cfg: dict, label: str) -> dict | None:
    """Run one configuration in a fresh interpreter; its result, or None (and stderr printed) if it failed."""
    proc = subprocess.run(
        [sys.executable, __file__, "--_child", json.dumps(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=child_env(cfg),
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        print(f"{label} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len("RESULT ") :])


def compare_original(args) -> list[dict]:
    """Ours and the 2018 code on the same batches, each configuration alternating between the two in fresh
    subprocesses. Prints per round and overall (median over all timed iterations) s/iter, its/s, the ratio of
    iterations per second (ours / original) and each one's largest peak memory."""
    import tempfile

    import torch

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            for n in args.instances:
                data = ""
                if args.dataroot:
                    data = str(Path(tmp) / f"batches_{mode}_{n}.pt")
                    cfg = child_config(args, mode, n, tmp)
                    torch.save(dataset_batches(cfg, args.dataroot, args.warmup + args.iters), data)
                runs: dict[str, list[dict]] = {"ours": [], "original": []}
                for k in range(args.rounds):
                    for impl in ("ours", "original"):
                        cfg = child_config(args, mode, n, tmp, impl=impl, data=data)
                        r = run_subprocess(cfg, f"{impl} {mode} n={n} round {k + 1}")
                        if r is None:
                            return results
                        runs[impl].append(r)
                        print(
                            f"round {k + 1} {impl:>8} {mode} n={n}: wall {r['s_per_iter']:.3f} s/iter (median of "
                            f"{len(r['times'])}: {', '.join(f'{t:.2f}' for t in sorted(r['times']))}), CPU "
                            f"{r['cpu_s_per_iter']:.3f} s, {r['threads']} threads, {r['peak_mem_mb']:.0f} MiB, "
                            f"{r['page_faults_per_iter']:.0f} page faults/iter, load avg "
                            f"{min(r['load_avg']):.2f}-{max(r['load_avg']):.2f}",
                            flush=True,
                        )
                summary = {"mode": mode, "instances": n, "rounds": args.rounds}
                for impl, rs in runs.items():
                    times = sorted(t for r in rs for t in r["times"])
                    median = times[len(times) // 2]
                    cpu = sorted(r["cpu_s_per_iter"] for r in rs)[len(rs) // 2]
                    peak = max(r["peak_mem_mb"] for r in rs)
                    summary[impl] = {
                        "s_per_iter": median,  # wall clock, median over every timed iteration of every round
                        "its_per_s": 1 / median,
                        "peak_mem_mb": peak,
                        "cpu_s_per_iter": cpu,
                        "load_avg": [
                            min(x for r in rs for x in r["load_avg"]),
                            max(x for r in rs for x in r["load_avg"]),
                        ],
                    }
                summary["ratio"] = summary["ours"]["its_per_s"] / summary["original"]["its_per_s"]
                results.append(summary)
                o, t = summary["ours"], summary["original"]
                print(
                    f"{mode} n={n}: ours {o['its_per_s']:.4f} it/s ({o['s_per_iter']:.3f} s/iter, peak "
                    f"{o['peak_mem_mb']:.0f} MiB), original {t['its_per_s']:.4f} it/s "
                    f"({t['s_per_iter']:.3f} s/iter, peak {t['peak_mem_mb']:.0f} MiB): "
                    f"ratio ours/original {summary['ratio']:.2f}x (wall-clock medians over {args.rounds} rounds; "
                    f"{args.threads or 'default'} threads; load avg {min(o['load_avg'][0], t['load_avg'][0]):.2f}-"
                    f"{max(o['load_avg'][1], t['load_avg'][1]):.2f}; original's heap "
                    f"{'as ours' if args.same_allocator else 'glibc default'})",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

"""The paper's ablations end to end: train each variant, test it, evaluate it, and print one table.

    python scripts/ablation.py --dataroot ./datasets/shp2gir_coco --name_prefix shp2gir_ \
        --loadSizeH 220 --loadSizeW 220 --fineSizeH 200 --fineSizeW 200

Variants (``--variants``; all by default), the ladder of the paper's Fig. 9, each adding one thing to the one before:

    cyclegan       CycleGAN (--model cycle_gan; the dataset's masks only for the evaluation)
    insta_noctx    InstaGAN's networks, no context loss, one-step translation (--lambda_ctx 0 --translation onestep)
    insta_onestep  + the context loss (--translation onestep)
    instagan       + sequential mini-batch translation: the full InstaGAN

and each InstaGAN variant is tested both in one step and sequentially (``--test_modes``), the paper's Fig. 10.
Every other argument goes to train.py for every variant (options a variant's model does not have are dropped for
it, and said so); test.py gets the ones it knows, with the images loaded at the training's crop size.

Writes ``<results_dir>/<name_prefix>ablation/ablation.json`` and ``index.html`` (the table, linked to each results
page). Re-running skips the variants already trained with the same arguments (``--retrain`` trains them again) and
resumes an interrupted one with --continue_train; testing and evaluation always run again (they are quick). A
checkpoints folder that ablation.py did not train (scripts/toy.sh's ``toy_instagan``, say) is never trained over:
that variant fails with a message; ``--retrain`` trains over it, with a warning.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import data  # noqa: E402
import models  # noqa: E402
from metrics.evaluator import DIRECTIONS, METRICS  # noqa: E402
from options.base_options import parse_gpu_ids  # noqa: E402
from options.test_options import TestOptions  # noqa: E402
from options.train_options import TrainOptions  # noqa: E402
from util.fileio import atomic_write_text  # noqa: E402

TEST_MODES = ("onestep", "sequential")
MARKER = "ablation_train.json"  # in checkpoints/<name>/: the arguments of the training, and whether it finished


@dataclass(frozen=True)
class Variant:
    label: str
    train: tuple[str, ...]  # added after the user's arguments, so they win
    instances: bool = True  # an InstaGAN: tested in both --test_modes
    test: tuple[str, ...] = field(default=())


VARIANTS = {
    # --netG basic --netD n_layers: CycleGAN's networks with --n_blocks blocks and --n_layers_D layers, so that a
    # smaller InstaGAN (as for the toy data) is compared with a CycleGAN of the same depth; by default these are
    # CycleGAN's resnet_9blocks and 3-layer PatchGAN.
    "cyclegan": Variant("CycleGAN", ("--model", "cycle_gan", "--netG", "basic", "--netD", "n_layers"), instances=False),
    "insta_noctx": Variant(
        "InstaGAN networks, no context loss, one-step",
        ("--model", "insta_gan", "--lambda_ctx", "0", "--translation", "onestep"),
    ),
    "insta_onestep": Variant("+ context loss, one-step", ("--model", "insta_gan", "--translation", "onestep")),
    "instagan": Variant(
        "+ sequential mini-batches (InstaGAN)", ("--model", "insta_gan", "--translation", "sequential")
    ),
}


# ------------------------------------------------------------------------------------------------ arguments


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Any other argument goes to train.py (and, where it knows it, to test.py) for every variant.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataroot", required=True, help="the dataset, as for train.py")
    parser.add_argument("--name_prefix", default="ablation_", help="each variant's --name is <prefix><variant>")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="which to run")
    parser.add_argument(
        "--test_modes",
        nargs="+",
        default=list(TEST_MODES),
        choices=TEST_MODES,
        help="how the InstaGAN variants translate at test: all instances in one step, or --test_ins_per at a time",
    )
    parser.add_argument("--test_ins_max", type=int, default=20, help="instances per image at test")
    parser.add_argument(
        "--test_ins_per",
        type=int,
        default=None,
        help="instances per sequential test step (default: the training's --ins_per)",
    )
    parser.add_argument("--num_test", type=int, default=50, help="test images per variant")
    parser.add_argument(
        "--eval", action="store_true", help="test with test.py --eval (batch norm's running statistics, no dropout)"
    )
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="as for train.py")
    parser.add_argument("--results_dir", default="./results", help="results/<mode>/<name>/test_latest per test")
    parser.add_argument("--inception_weights", default=None, help="for FID/KID, as for evaluate.py")
    parser.add_argument("--retrain", action="store_true", help="train again the variants already trained")
    return parser.parse_known_args(argv)


def parser_for(options_cls, argv: list[str]) -> argparse.ArgumentParser:
    """The full parser train.py/test.py would use for ``argv`` (with its model's and dataset's options)."""
    options = options_cls()
    parser = options.build_parser()
    known, _ = parser.parse_known_args(argv)
    parser = models.get_option_setter(known.model)(parser, options.isTrain)
    known, _ = parser.parse_known_args(argv)
    return data.get_option_setter(known.dataset_mode)(parser, options.isTrain)


def keep_known(options_cls, argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` without the arguments its parser does not know (flags and their values): (kept, dropped)."""
    _, unknown = parser_for(options_cls, argv).parse_known_args(argv)
    kept, dropped, j = [], [], 0
    for token in argv:  # the unknown tokens are a subsequence of argv, in order
        if j < len(unknown) and token == unknown[j]:
            dropped.append(token)
            j += 1
        else:
            kept.append(token)
    return kept, dropped


def value_of(argv: list[str], flag: str, default: str) -> str:
    """The last value given to ``flag`` in ``argv`` (``--flag v`` or ``--flag=v``), else ``default``."""
    value = default
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif token.startswith(f"{flag}="):
            value = token.split("=", 1)[1]
    return value


def without(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag`` and its value (either ``--flag v`` or ``--flag=v``)."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == flag:
            skip = True
        elif not token.startswith(f"{flag}="):
            out.append(token)
    return out


# ------------------------------------------------------------------------------------------------ the runs


def variant_train_argv(key: str, variant: Variant, args, extra: list[str], log=print) -> list[str]:
    """train.py's arguments for a variant: Visdom off unless asked, the user's, then the variant's own (which win).
    Options its model does not have are dropped, and said so."""
    user = extra
    if "onestep" in variant.train:  # one step means --ins_per = --ins_max: a given --ins_per would contradict it
        user = without(user, "--ins_per")
    argv = [
        "--display_id",
        "0",
        *user,
        "--dataroot",
        args.dataroot,
        "--checkpoints_dir",
        args.checkpoints_dir,
        "--name",
        f"{args.name_prefix}{key}",
        *variant.train,
    ]
    argv, dropped = keep_known(TrainOptions, argv)
    if dropped:
        log(f"[{key}] not an option of {variant.train[1]}, dropped: {' '.join(dropped)}")
    return argv


def train_variant(key: str, variant: Variant, args, extra: list[str], log=print) -> tuple[str, list[str]]:
    """Train one variant unless it was already trained with the same arguments. Returns its name and the
    arguments train.py got."""
    import train

    name = f"{args.name_prefix}{key}"
    argv = variant_train_argv(key, variant, args, extra, log)
    folder = Path(args.checkpoints_dir) / name
    marker = folder / MARKER
    previous = json.loads(marker.read_text()) if marker.is_file() else None
    same = previous is not None and previous.get("argv") == argv
    if same and previous.get("finished") and not args.retrain:
        log(f"[{key}] already trained ({folder}); --retrain trains it again")
        return name, argv
    if previous is None and any(folder.glob("*.pth")):
        if not args.retrain:
            raise RuntimeError(
                f"{folder} holds a run that ablation.py did not train (it has no {MARKER}); choose another "
                f"--name_prefix or move that folder away (--variants {key} --retrain trains over it)"
            )
        log(f"[{key}] warning: --retrain trains over {folder}, a run that ablation.py did not train")
    resume = same and not args.retrain and (folder / "latest_state.pth").is_file()
    if previous is not None and not same:
        log(f"[{key}] the arguments changed since {marker}: training afresh")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps({"argv": argv, "finished": False}, indent=2) + "\n")
    log(f"[{key}] {'resuming' if resume else 'training'}: python train.py {' '.join(argv)}")
    train.main([*argv, "--continue_train"] if resume else argv)
    atomic_write_text(marker, json.dumps({"argv": argv, "finished": True}, indent=2) + "\n")
    return name, argv


def test_variant(
    key: str, variant: Variant, name: str, train_argv: list[str], mode: str | None, args, log=print
) -> Path:
    """test.py on the trained variant, images loaded at the training's crop size. Returns the results folder."""
    import test

    opt = parser_for(TrainOptions, train_argv).parse_args(train_argv)
    results_dir = Path(args.results_dir) / (mode or "single")
    argv = [
        *train_argv,
        "--results_dir",
        str(results_dir),
        "--num_test",
        str(args.num_test),
        "--loadSizeH",
        str(opt.fineSizeH),
        "--loadSizeW",
        str(opt.fineSizeW),
        "--fineSizeH",
        str(opt.fineSizeH),
        "--fineSizeW",
        str(opt.fineSizeW),
    ]
    if mode is not None:
        argv = without(without(without(argv, "--ins_max"), "--ins_per"), "--translation")
        argv += ["--ins_max", str(args.test_ins_max), "--translation", mode]
        if mode == "sequential":
            argv += ["--ins_per", str(args.test_ins_per or opt.ins_per)]
    if args.eval:
        argv.append("--eval")
    argv, _ = keep_known(TestOptions, argv)
    log(f"[{key}] testing ({mode or 'images only'}): python test.py {' '.join(argv)}")
    index = test.main(argv)
    return Path(index).parent


def evaluate_variant(results: Path, name: str, args, device: str) -> dict:
    from evaluate import evaluate_results

    return evaluate_results(
        results,
        dataroot=args.dataroot,
        checkpoints_dir=args.checkpoints_dir,
        name=name,
        device=device,
        inception_weights=args.inception_weights,
    )


def share_classifier(checkpoints_dir: str, names: list[str], name: str) -> None:
    """The domain classifier depends on the dataset only: reuse the one an earlier variant trained."""
    target = Path(checkpoints_dir) / name / "domain_classifier.pth"
    for other in names:
        source = Path(checkpoints_dir) / other / "domain_classifier.pth"
        if other != name and source.is_file() and not target.is_file():
            shutil.copy2(source, target)
            return


# ------------------------------------------------------------------------------------------------ the table


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "test", "direction", *METRICS]
    body = []
    for row in rows:
        for d in DIRECTIONS:
            if row.get("error"):
                body.append([row["variant"], row["test"], d, f"failed: {row['error']}"])
                continue
            m = row["metrics"].get(d, {})
            body.append([row["variant"], row["test"], d, *(_fmt(m.get(k)) for k in METRICS)])
    return header, body


def format_table(rows: list[dict]) -> str:
    header, body = table_rows(rows)
    widths = [max(len(r[i]) if i < len(r) else 0 for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_page(path: Path, rows: list[dict], command: str) -> Path:
    """An HTML page with the table; each row links to its results page."""
    import dominate
    from dominate.tags import a, code, h1, meta, p, style, table, td, th, tr

    header, body = table_rows(rows)
    doc = dominate.document(title="Ablation")
    with doc.head:
        meta(charset="utf-8")
        style(
            "table{border-collapse:collapse;font-size:0.9em}td,th{border:1px solid #999;padding:2px 6px;"
            "text-align:right}td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}"
        )
    with doc:
        h1("Ablation: CycleGAN → InstaGAN (the paper's Fig. 9 and 10)", style="font-size:1.4em")
        p("Command: ", code(command))
        p(
            f"Written {time.strftime('%Y-%m-%d %H:%M:%S')}. Pixel errors on the [0, 1] scale; bg_* over pixels "
            "that are background in the input and translated masks, fg_* inside the input masks; "
            "*_change = translated − input; domain_score: share of translations the domain classifier assigns to "
            "the target domain."
        )
        with table():
            with tr():
                for h in header:
                    th(h)
            for cells, row in zip(body, [r for r in rows for _ in DIRECTIONS]):
                with tr():
                    for i, cell in enumerate(cells):
                        if i == 1 and row.get("results"):
                            link = os.path.relpath(Path(row["results"]) / "index.html", path.parent)
                            td(a(cell, href=Path(link).as_posix()))  # relative: the folder can move
                        else:
                            td(cell, colspan=str(len(header) - 3) if cell.startswith("failed") else "1")
    atomic_write_text(path, doc.render())
    return path


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> list[dict]:
    import torch

    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    command = "python scripts/ablation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    gpu_ids = parse_gpu_ids(value_of(extra, "--gpu_ids", "0"))
    device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"  # for the evaluation, as train.py's
    names = [f"{args.name_prefix}{k}" for k in args.variants]
    rows: list[dict] = []
    for key in args.variants:
        variant = VARIANTS[key]
        try:
            name, train_argv = train_variant(key, variant, args, extra)
        except Exception as e:  # one failed variant does not stop the others; the table says why
            print(f"[{key}] training failed: {type(e).__name__}: {e}", flush=True)
            rows.append({"key": key, "variant": variant.label, "test": "-", "error": f"training: {e}"})
            continue
        for mode in args.test_modes if variant.instances else [None]:
            row = {"key": key, "variant": variant.label, "name": name, "test": mode or "-", "train_argv": train_argv}
            try:
                results = test_variant(key, variant, name, train_argv, mode, args)
                share_classifier(args.checkpoints_dir, names, name)
                row.update(results=str(results), metrics=evaluate_variant(results, name, args, device))
            except Exception as e:
                print(f"[{key}] test/evaluation failed: {type(e).__name__}: {e}", flush=True)
                row["error"] = f"{type(e).__name__}: {e}"
            rows.append(row)

    out = Path(args.results_dir) / f"{args.name_prefix}ablation"
    out.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "written": time.strftime("%Y-%m-%d %H:%M:%S"), "metrics": list(METRICS), "rows": rows}
    atomic_write_text(out / "ablation.json", dumps(record) + "\n")
    page = write_page(out / "index.html", rows, command)
    print()
    print(format_table(rows))
    print(f"\ntable: {out / 'ablation.json'}\npage:  {page}")
    if any(row.get("error") for row in rows):
        raise SystemExit(1)
    return rows


_INFINITY = "__infinity__"


def _plain(value):
    """Tensors and NumPy numbers as floats; an infinity (the PSNR of an exact copy) marked for ``dumps``."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    value = float(value)
    return value if math.isfinite(value) else (f"-{_INFINITY}" if value < 0 else _INFINITY)


def dumps(value) -> str:
    """Standard JSON, with infinities written as ``1e999`` as in evaluate.py's metrics.json (``json.loads`` reads
    it back as ``inf``)."""
    text = json.dumps(_plain(value), indent=2)
    return text.replace(f'"-{_INFINITY}"', "-1e999").replace(f'"{_INFINITY}"', "1e999")


if __name__ == "__main__":
    main()

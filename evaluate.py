"""Measure a translation from the results folder test.py wrote: what it kept, what it changed, and whether it looks
like the target domain.

    python evaluate.py --results_dir results/<name>/<phase>_<epoch> [--dataroot D] [--inception_weights FILE]

Per direction (AtoB: real_A_img → fake_B_img, masks real_A → fake_B; BtoA likewise; see metrics/pixels.py):

- context preservation: L1 and PSNR over the pixels that are background in both the input and translated masks;
- instance change: the same inside the input masks; mask change: IoU, area, aspect and extent change per instance;
- domain classification score (paper, section 3): the share of translations that a classifier, trained from
  scratch on the dataset's real train A vs train B images, assigns to the target domain, next to its accuracy on
  the real test images (kept in checkpoints/<name>/domain_classifier.pth and reused);
- FID and KID on Inception-v3 features, when the weights are on this machine (nothing is downloaded).

Prints a table, writes ``metrics.json`` beside the results page and adds a metrics section to ``index.html``.
Importable: ``from evaluate import evaluate_results``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from metrics.classifier import load_or_train
from metrics.evaluator import DIRECTIONS, Evaluator, dumps, format_table, table_rows
from metrics.inception import InceptionFeatures, find_weights, how_to_get_weights
from metrics.results import ResultsFolder, add_metrics_to_page, metrics_section
from util.util import atomic_write_text


def run_options(checkpoints_dir: str | Path, name: str) -> dict:
    """The run's saved options (test_opt.json, else train_opt.json), or {} when neither exists."""
    for prefix in ("test", "train"):
        path = Path(checkpoints_dir) / name / f"{prefix}_opt.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError as e:
                print(f"evaluate: ignoring {path}, which is not valid JSON ({e})")
    return {}


def evaluate_results(
    results_dir: str | Path,
    dataroot: str | Path | None = None,
    checkpoints_dir: str | Path = "./checkpoints",
    name: str | None = None,
    device: str = "cpu",
    inception_weights: str | Path | None = None,
    log=print,
) -> dict:
    """Metrics of a results folder: ``{"AtoB": {...}, "BtoA": {...}}`` with the keys of ``metrics.evaluator.KEYS``,
    None where a metric cannot be computed (no masks, no dataroot for the classifier, no Inception weights).

    ``name`` defaults to the results folder's parent (results/<name>/<phase>_<epoch>); ``dataroot`` to the run's
    saved options. Writes ``metrics.json`` and the page's metrics section; the classifier goes to
    ``<checkpoints_dir>/<name>/domain_classifier.pth``."""
    folder = ResultsFolder(results_dir)
    name = name or folder.root.resolve().parent.name
    options = run_options(checkpoints_dir, name)
    dataroot = dataroot or options.get("dataroot")
    notes = []

    classifier = None
    if dataroot is None:
        notes.append(
            f"domain score skipped: no --dataroot given and no {Path(checkpoints_dir) / name}/test_opt.json "
            "to read it from"
        )
    else:
        path = Path(checkpoints_dir) / name / "domain_classifier.pth"
        classifier = load_or_train(path, dataroot, folder.image_size(), device=device, seed=0, log=log)

    inception = None
    weights = find_weights(inception_weights)
    if weights is None:
        notes.append(f"FID/KID skipped: {how_to_get_weights()}")
    else:
        inception = InceptionFeatures(weights).to(device)

    if not folder.instance_masks:
        notes.append(
            f"no instance masks in {folder.mask_dir} (written by test.py since it saves them): background "
            "and instance errors use the merged masks, and the mask changes are not measured"
        )
    evaluator = Evaluator(classifier, inception, swap_domains=options.get("direction") == "BtoA")
    with torch.no_grad():
        for visuals, masks in folder.batches():
            masks = {k: v.to(device) for k, v in masks.items()}
            evaluator.add({k: v.to(device) for k, v in visuals.items()}, masks, instances=folder.instance_masks)
    metrics = evaluator.result()

    for note in notes:
        log(note)
    log(format_table(metrics))
    record = {
        "results_dir": str(folder.root),
        "name": name,
        "dataroot": None if dataroot is None else str(dataroot),
        "inception_weights": None if weights is None else str(weights),
        "notes": notes,
        **metrics,
    }
    atomic_write_text(folder.root / "metrics.json", dumps(record, indent=2) + "\n")
    if add_metrics_to_page(folder.root / "index.html", metrics_section(table_rows(metrics), notes)):
        log(f"metrics added to {folder.root / 'index.html'}")
    log(f"metrics written to {folder.root / 'metrics.json'}")
    return {d: metrics[d] for d in DIRECTIONS}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--results_dir", required=True, help="the folder test.py wrote: results/<name>/<phase>_<epoch>")
    parser.add_argument(
        "--dataroot",
        default=None,
        help="the dataset (for the domain classifier's train A/B images); "
        "default: the run's checkpoints/<name>/test_opt.json",
    )
    parser.add_argument(
        "--checkpoints_dir", default="./checkpoints", help="where the run's options and the domain classifier are kept"
    )
    parser.add_argument("--name", default=None, help="the run's name; default: the results folder's parent")
    parser.add_argument(
        "--inception_weights",
        default=None,
        help="torchvision's inception_v3 ImageNet state_dict "
        "for FID/KID; default: torch's cache, when the file is there",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:<n>")
    args = parser.parse_args(argv)
    try:
        return evaluate_results(
            args.results_dir, args.dataroot, args.checkpoints_dir, args.name, args.device, args.inception_weights
        )
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        raise SystemExit(f"evaluate.py: {e}") from None


if __name__ == "__main__":
    main(sys.argv[1:])

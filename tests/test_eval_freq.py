"""--eval_freq: metrics on held-out images during training, logged, plotted on the training page, and without
changing what is trained."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import torch
from conftest import SMALL

import train
from metrics.training import read_log


def _train(toy_root, tmp_path, name, *extra):
    train.main(
        [
            "--dataroot",
            str(toy_root),
            "--name",
            name,
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            *SMALL,
            "--niter",
            "1",
            "--niter_decay",
            "1",
            "--batch_size",
            "2",
            "--display_id",
            "0",
            "--print_freq",
            "2",
            "--update_html_freq",
            "2",
            "--deterministic",
            *extra,
        ]
    )
    return tmp_path / "ck" / name


@pytest.mark.slow
def test_eval_freq_logs_and_plots_metrics_and_trains_the_same(toy_root, tmp_path, capsys, one_thread):
    run = _train(toy_root, tmp_path, "eval", "--eval_freq", "1", "--eval_num", "2")
    out = capsys.readouterr().out
    assert "(epoch: 1) eval on 2 test images" in out and "(epoch: 2) eval on 2 test images" in out
    entries = read_log(run / "metrics_log.jsonl")
    assert [e["epoch"] for e in entries] == [1, 2]
    for e in entries:
        for d in ("AtoB", "BtoA"):
            m = e[d]
            assert m["num_images"] == 2 and 0 <= m["bg_l1"] <= 1 and 0 <= m["domain_score"] <= 1
            assert m["mask_iou"] is None or 0 <= m["mask_iou"] <= 1
    assert (run / "domain_classifier.pth").is_file()  # trained once, at the first evaluation
    assert out.count("domain classifier: trained on") == 1
    svg = ET.fromstring((run / "web" / "metrics_l1.svg").read_text())
    paths = [p for p in svg.iter("{http://www.w3.org/2000/svg}path") if p.get("class") == "loss"]
    assert {p.get("data-name") for p in paths} == {"AtoB bg L1", "BtoA bg L1", "AtoB inst L1", "BtoA inst L1"}
    assert all("L" in p.get("d") for p in paths if "bg" in p.get("data-name"))  # a line through both epochs
    page = (run / "web" / "index.html").read_text()
    assert 'id="metrics_l1"' in page and 'id="metrics_scores"' in page and 'id="loss_plot"' in page

    # The evaluation draws no random numbers from the training's generators: the same weights as without it.
    plain = _train(toy_root, tmp_path, "plain")
    for net in ("G_A", "D_B"):
        a = torch.load(run / f"latest_net_{net}.pth", weights_only=True)
        b = torch.load(plain / f"latest_net_{net}.pth", weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (plain / "metrics_log.jsonl").exists()


def test_metrics_log_restart_replaces_later_epochs(tmp_path):
    log = tmp_path / "metrics_log.jsonl"
    lines = [
        {"session_start": 1},
        {"epoch": 1, "AtoB": {"bg_l1": 0.5}},
        {"epoch": 2, "AtoB": {"bg_l1": 0.4}},
        {"epoch": 3, "AtoB": {"bg_l1": 0.3}},
        {"session_start": 3},
        {"epoch": 3, "AtoB": {"bg_l1": 0.2}},
    ]
    log.write_text("\n".join(json.dumps(item) for item in lines) + '\n{"epoch": 4, "AtoB"')  # last line cut by a crash
    entries = read_log(log)
    assert [(e["epoch"], e["AtoB"]["bg_l1"]) for e in entries] == [(1, 0.5), (2, 0.4), (3, 0.2)]


def test_eval_phase_must_exist(toy_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="--phase nope"):
        _train(toy_root, tmp_path, "bad", "--eval_freq", "1", "--eval_phase", "nope")


def test_training_page_shows_the_charts_before_any_visuals(toy_root, tmp_path):
    """A resumed run redraws the charts at its start, before it has visuals to show: no empty epoch rows."""
    from conftest import make_train_opts

    from util.visualizer import Visualizer

    vis = Visualizer(make_train_opts(toy_root, tmp_path))
    vis.extra_plots = {"metrics_l1": '<svg id="metrics_l1"></svg>'}
    vis.refresh_page(3)
    page = (vis.web_dir / "index.html").read_text()
    assert 'id="metrics_l1"' in page and "epoch [" not in page

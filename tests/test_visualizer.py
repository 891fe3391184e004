"""The visualizer without a browser: loss-log parsing and the SVG curve, the training page, Visdom that never stops
training (one warning, quiet retries, reconnection), and the Visdom asset installer."""

from __future__ import annotations

import io
import math
import socket
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import make_train_opts
from util import visualizer as visualizer_module
from util.loss_plot import LossLog, curve_points, nice_ticks, parse_line, render_svg
from util.visualizer import Visualizer

ROOT = Path(__file__).resolve().parent.parent
LINE = (
    "(epoch: 3, iters: 200, time: 0.512, data: 0.003) D_A: 0.251 G_A: 0.730 cyc_A: 2.000 | epoch 3/10  "
    "200/400 (50%)  1.2 it/s"
)
SVG = "{http://www.w3.org/2000/svg}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def visdom_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Visdom " in line]


def test_parse_line():
    entry = parse_line(LINE)
    assert (entry.epoch, entry.iters) == (3, 200)
    assert entry.losses == {"D_A": 0.251, "G_A": 0.73, "cyc_A": 2.0}  # the progress suffix is not a loss
    assert math.isnan(parse_line("(epoch: 1, iters: 2, time: 1.0, data: 0.1) G_A: nan").losses["G_A"])
    assert parse_line("================ Training Loss (Sat Nov 28 02:13:25 2026) ================") is None
    assert parse_line("saving the latest model") is None


def test_loss_log_reads_appended_lines_and_restarts(tmp_path):
    path = tmp_path / "loss_log.txt"
    header = "================ Training Loss (now) ================\n"

    def line(epoch, iters):
        return f"(epoch: {epoch}, iters: {iters}, time: 0.1, data: 0.0) G_A: {epoch + iters / 10:.3f}\n"

    path.write_text(header + line(1, 5) + line(1, 10) + line(2, 5) + line(2, 10)[:20])  # last line half written
    log = LossLog(path)
    assert [(e.epoch, e.iters) for e in log.update()] == [(1, 5), (1, 10), (2, 5)]
    with open(path, "a") as f:
        f.write(line(2, 10)[20:] + header + line(2, 5))  # resumed at epoch 2: epoch 2 is replaced
    assert [(e.epoch, e.iters) for e in log.update()] == [(1, 5), (1, 10), (2, 5)]
    assert log.entries[-1].losses["G_A"] == pytest.approx(2.5)
    with open(path, "a") as f:
        f.write(header + line(1, 5))  # started over: the old curve goes
    assert [(e.epoch, e.iters) for e in log.update()] == [(1, 5)]


def test_curve_points_are_fractional_epochs(tmp_path):
    entries = [
        parse_line(f"(epoch: {e}, iters: {i}, time: 0, data: 0) D_A: 1.0 G_A: 2.0") for e in (1, 2) for i in (5, 10)
    ]
    x, series = curve_points(entries, epoch_size=10)
    assert x == [0.5, 1.0, 1.5, 2.0]
    assert series == {"D_A": [1.0] * 4, "G_A": [2.0] * 4}
    assert curve_points(entries)[0] == x  # epoch size estimated from the largest iters
    assert curve_points([]) == ([], {})


def test_render_svg_one_path_per_loss():
    x = [i / 10 for i in range(30)]
    series = {"D_A": [0.3] * 30, "G_A": [1.0 + i for i in range(30)], "cyc_A": [2.0] * 10 + [math.nan] + [1.0] * 19}
    root = ET.fromstring(render_svg(x, series, "run <1>"))  # valid XML, title escaped
    paths = root.findall(f".//{SVG}path")
    assert [p.get("data-name") for p in paths] == ["D_A", "G_A", "cyc_A"]
    assert paths[2].get("d").count("M") == 2  # a NaN breaks the line instead of dropping to zero
    assert "run <1>" in root.find(f"{SVG}title").text
    empty = ET.fromstring(render_svg([], {}))
    assert "no losses logged yet" in "".join(empty.itertext())
    long = ET.fromstring(render_svg(list(range(10_000)), {"G_A": [1.0] * 10_000}, max_points=500))
    assert long.find(f".//{SVG}path").get("d").count("L") < 500
    single = ET.fromstring(render_svg([0.5], {"G_A": [1.0]}))  # one print so far: still a visible dot
    assert single.find(f".//{SVG}circle") is not None


def test_nice_ticks():
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(0.0, 0.95, 4) == [0, 0.2, 0.4, 0.6, 0.8]
    assert nice_ticks(5, 5)  # a flat range still gets ticks


def fake_visuals(seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return OrderedDict(
        (name, torch.rand(1, c, 16, 20, generator=g) * 2 - 1)
        for name, c in (("real_A_img", 3), ("fake_B_img", 3), ("real_A_seg", 1))
    )


LOSSES = OrderedDict(D_A=0.25, G_A=0.7, cyc_A=2.0)


def visdom_opts(toy_root, tmp_path, port):
    return make_train_opts(
        toy_root,
        tmp_path,
        *"--display_id 1 --display_server http://127.0.0.1 --display_port".split(),
        str(port),
        "--display_ncols",
        "2",
    )


def test_no_server_one_warning_and_training_page(toy_root, tmp_path, capsys):
    port = free_port()
    vis = Visualizer(visdom_opts(toy_root, tmp_path, port), retry_seconds=0)  # retry at every call, quietly
    for epoch in (1, 2):
        for it in (2, 4):
            vis.print_current_losses(epoch, it, LOSSES, 0.1, 0.01)
            vis.plot_current_losses(epoch, it / 4, LOSSES)
            vis.display_current_results(fake_visuals(it), epoch, save_result=True)
    out = capsys.readouterr().out
    warnings = visdom_lines(out)
    assert len(warnings) == 1, out
    assert f"python -m visdom.server -port {port}" in warnings[0] and "--display_id 0" in warnings[0]
    assert vis.epoch_size == 4

    web = tmp_path / "checkpoints" / "t" / "web"
    page = (web / "index.html").read_text()
    assert page.index("epoch [2]") < page.index("epoch [1]")  # newest first
    assert 'id="loss_plot"' in page and page.count('class="loss"') == 3
    assert sorted(p.name for p in (web / "images").glob("*.png")) == sorted(
        f"epoch{e:03d}_{n}.png" for e in (1, 2) for n in fake_visuals()
    )
    assert "?v=" in page  # rewritten images are not taken from the browser's cache
    ET.fromstring((web / "loss_curve.svg").read_text())


class FakeVisdom:
    def __init__(self, fail_on: str = ""):
        self.calls: list[tuple[str, dict]] = []
        self.fail_on = fail_on

    def __getattr__(self, method):
        def call(*args, **kwargs):
            if method == self.fail_on:
                raise ConnectionError("server went away")
            self.calls.append((method, {"args": args, **kwargs}))

        return call


def test_reconnects_and_survives_a_dying_server(toy_root, tmp_path, capsys, monkeypatch):
    clients = [ConnectionError("refused"), FakeVisdom(), FakeVisdom(fail_on="line")]

    def connect(*args):
        client = clients.pop(0)
        if isinstance(client, Exception):
            raise client
        return client

    monkeypatch.setattr(visualizer_module, "visdom_client", connect)
    vis = Visualizer(visdom_opts(toy_root, tmp_path, 8097), retry_seconds=0)
    assert vis.vis is None
    vis.print_current_losses(1, 2, LOSSES, 0.1, 0.01)
    vis.plot_current_losses(1, 0.5, LOSSES)  # reconnects and sends the plot
    server = vis.vis
    assert isinstance(server, FakeVisdom)
    vis.plot_current_losses(1, 1.0, LOSSES)
    vis.display_current_results(fake_visuals(), 1, save_result=False)
    methods = [m for m, _ in server.calls]
    assert methods == ["line", "line", "images", "text"]
    last_line = server.calls[1][1]
    assert last_line["X"].shape == (2, 3) and last_line["opts"]["legend"] == list(LOSSES)
    assert last_line["X"][:, 0].tolist() == [0.0 + 0.5, 0.0 + 1.0]  # epoch 1: x = epochs completed
    assert server.calls[2][1]["nrow"] == 2  # --display_ncols

    vis.vis = None  # the server restarts; the next connection fails when sending
    vis.plot_current_losses(2, 0.5, LOSSES)
    assert vis.vis is None
    out = capsys.readouterr().out
    assert len([line for line in visdom_lines(out) if "No Visdom server" in line or "Lost" in line]) == 1, out
    assert any("answered" in line for line in visdom_lines(out))


def test_visdom_not_installed(toy_root, tmp_path, capsys, monkeypatch):
    def missing(*args):
        raise ImportError("No module named 'visdom'")

    monkeypatch.setattr(visualizer_module, "visdom_client", missing)
    vis = Visualizer(visdom_opts(toy_root, tmp_path, 8097), retry_seconds=0)
    vis.plot_current_losses(1, 0.5, LOSSES)
    vis.display_current_results(fake_visuals(), 1, save_result=False)
    assert vis.display_id == 0
    assert len(visdom_lines(capsys.readouterr().out)) == 1


def _package(name: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"package/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_asset_installer_from_tarballs(tmp_path):
    """Offline: install from a folder of npm tarballs (here, small stand-ins) into a stand-in visdom package."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import install_visdom_assets as installer
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    tarballs, package = tmp_path / "tarballs", tmp_path / "visdom"
    tarballs.mkdir()
    (package / "static").mkdir(parents=True)
    (package / "VERSION").write_text("0.2.4\n")
    for name, version, files in installer.ASSETS:
        (tarballs / installer.tarball_name(name, version)).write_bytes(
            _package(name, {src: f"{name}:{src}".encode() for src in files.values()})
        )
    args = ["--visdom_dir", str(package)]
    assert installer.main([*args, "--check"]) == 1
    assert installer.main([*args, "--tarballs", str(tarballs)]) == 0
    assert installer.main([*args, "--check"]) == 0
    static = package / "static"
    assert (static / "version.built").read_text() == "0.2.4"
    assert (static / "js/plotly-plotly.min.js").read_bytes() == b"plotly.js-dist-min:plotly.min.js"
    assert (static / "fonts/glyphicons-halflings-regular.svg#glyphicons_halflingsregular").is_file()
    assert (static / "js/mathjax/2.7.5/jax/output/SVG/fonts/TeX/Size1/Regular/Main.js").is_file()


def test_installed_visdom_needs_no_network(monkeypatch):
    """Visdom's own start-up check, with every network call failing: after install_visdom_assets.py it asks for
    nothing, so ``python -m visdom.server`` starts offline."""
    pytest.importorskip("visdom")
    import urllib.request

    import requests
    from visdom.server import build

    check = subprocess.run(
        [sys.executable, "scripts/install_visdom_assets.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, f"{check.stdout} Run: python scripts/install_visdom_assets.py"
    asked = []

    def no_network(*args, **kwargs):
        asked.append(args)
        raise OSError("offline")

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", no_network)
    monkeypatch.setattr(requests, "get", no_network)
    opener = urllib.request._opener
    try:
        build.download_scripts()
    finally:
        urllib.request.install_opener(opener)  # download_scripts installs its own
    assert asked == []


def test_other_ranks_do_nothing(toy_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    vis = Visualizer(visdom_opts(toy_root, tmp_path, free_port()), retry_seconds=0)
    vis.print_current_losses(1, 2, LOSSES, 0.1, 0.01)
    vis.plot_current_losses(1, 0.5, LOSSES)
    vis.display_current_results(fake_visuals(), 1, save_result=True)
    assert capsys.readouterr().out == ""
    assert not (tmp_path / "checkpoints" / "t").exists()


def test_infinite_losses_are_sent_as_gaps(toy_root, tmp_path, monkeypatch):
    server = FakeVisdom()
    monkeypatch.setattr(visualizer_module, "visdom_client", lambda *args: server)
    vis = Visualizer(visdom_opts(toy_root, tmp_path, 8097))
    for i, value in enumerate([1.0, math.inf, math.nan]):
        vis.plot_current_losses(1, (i + 1) / 3, OrderedDict(G_A=value))
    Y = server.calls[-1][1]["Y"]
    assert Y[0, 0] == 1.0 and np.isnan(Y[1:, 0]).all()  # Infinity is not JSON; visdom turns NaN into a gap


def test_resumed_run_plots_its_history(toy_root, tmp_path, monkeypatch):
    server = FakeVisdom()
    monkeypatch.setattr(visualizer_module, "visdom_client", lambda *args: server)
    folder = tmp_path / "checkpoints" / "t"
    folder.mkdir(parents=True)
    old = [f"(epoch: {e}, iters: {i}, time: 0, data: 0) D_A: {e}.0 G_A: 1.0" for e in (1, 2, 3) for i in (2, 4)]
    (folder / "loss_log.txt").write_text(
        "================ Training Loss (then) ================\n" + "\n".join(old) + "\n"
    )
    vis = Visualizer(visdom_opts(toy_root, tmp_path, 8097))
    vis.print_current_losses(3, 2, OrderedDict(D_A=9.0, G_A=1.0), 0.1, 0.01)  # resumed at epoch 3
    vis.plot_current_losses(3, 0.5, OrderedDict(D_A=9.0, G_A=1.0))
    X, Y = server.calls[-1][1]["X"][:, 0], server.calls[-1][1]["Y"][:, 0]
    assert X.tolist() == [0.5, 1.0, 1.5, 2.0, 2.5]  # epochs 1-2 from the log, then this run; old epoch 3 dropped
    assert Y.tolist() == [1.0, 1.0, 2.0, 2.0, 9.0]

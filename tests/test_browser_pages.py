"""The monitoring pages in a real browser (Debian's chromium, headless, driven over the DevTools protocol).

- a short training run with ``--display_id 1`` and no Visdom server finishes with one warning; its training page and
  test.py's results page load with every image decoded and the loss plot present;
- with a local Visdom server (``python -m visdom.server``, started here on a free loopback port with every
  non-loopback address unreachable), a short training run puts a loss window and an image window on it, read back
  through the Visdom client, and the server's page renders them (a screenshot is saved).

The browser is reached with ``websocket-client``, which visdom already depends on: no Selenium, no Playwright.
Chromium resolves every host name but loopback to nothing, so these pages must render offline.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, SMALL

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (.ci/run does)")
LOSSES = ("D_A", "G_A", "cyc_A", "idt_A", "ctx_A", "D_B", "G_B", "cyc_B", "idt_B", "ctx_B")
RUN = [*SMALL, *"--niter 1 --niter_decay 0 --max_dataset_size 2 --serial_batches --ins_max 2".split()]
RUN += "--print_freq 1 --display_freq 1 --update_html_freq 1".split()  # every visual and loss, every iteration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path, timeout: float = 60.0):
        import websocket

        self.timeout = timeout
        profile.mkdir(parents=True, exist_ok=True)
        self.log = open(profile / "chromium.log", "wb")
        # fmt: off
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
             f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "--remote-allow-origins=*", "--window-size=1400,1000", "about:blank"],
            stdout=self.log, stderr=self.log,
        )
        # fmt: on
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start; see {profile / 'chromium.log'}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        self.ids = itertools.count(1)

    def call(self, method: str, **params):
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def wait_for(self, expression: str, timeout: float | None = None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.eval(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.25)

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


# Every image in the document has loaded and decoded (a broken one has complete === true and naturalWidth 0).
IMAGES_DECODED = """(() => { const ims = [...document.images];
  return {n: ims.length, ok: ims.filter(i => i.complete && i.naturalWidth > 0).length,
          broken: ims.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)}; })()"""


def visdom_lines(stdout: str) -> list[str]:
    """The visualizer's own lines about Visdom (the printed options may contain the word in a path)."""
    return [line for line in stdout.splitlines() if "Visdom " in line]


def run_main(capsys, program: str, args: list[str]) -> str:
    """``python <program>.py <args>`` in this process (no second torch import); returns what it printed."""
    main = __import__(program).main
    capsys.readouterr()
    main(args)
    return capsys.readouterr().out


@pytest.mark.slow
@needs_browser
def test_training_and_results_pages_render(toy_root, tmp_path, browser, capsys):
    ck, port = tmp_path / "checkpoints", free_port()  # nothing listens on ``port``: Visdom is unreachable
    common = ["--dataroot", str(toy_root), "--checkpoints_dir", str(ck), "--name", "pages"]
    stdout = run_main(
        capsys,
        "train",
        [*common, *RUN, "--display_id", "1", "--display_server", "http://127.0.0.1", "--display_port", str(port)],
    )
    warnings = visdom_lines(stdout)
    assert len(warnings) == 1 and f"python -m visdom.server -port {port}" in warnings[0], warnings
    run_main(
        capsys,
        "test",
        [*common, *SMALL, "--results_dir", str(tmp_path / "results"), "--num_test", "2", "--ins_max", "2"],
    )

    browser.open((ck / "pages" / "web" / "index.html").as_uri())
    images = browser.eval(IMAGES_DECODED)
    assert images["n"] == 12 and images["ok"] == 12, images  # one epoch of the 12 visuals
    assert browser.eval("document.querySelectorAll('svg#loss_plot path.loss').length") == len(LOSSES)
    names = browser.eval("[...document.querySelectorAll('svg#loss_plot path.loss')].map(p => p.dataset.name)")
    assert names == list(LOSSES)
    # both prints are on the curve (the page is redrawn at each print): every loss is a line, not a lone point
    assert browser.eval(
        "[...document.querySelectorAll('svg#loss_plot path.loss')].every(p => /L/.test(p.getAttribute('d')))"
    )
    assert browser.eval("document.querySelector('svg#loss_plot').getBoundingClientRect().height") > 100
    assert browser.eval("[...document.querySelectorAll('h3')].map(h => h.textContent)") == ["epoch [1]"]

    browser.open((tmp_path / "results" / "pages" / "test_latest" / "index.html").as_uri())
    images = browser.eval(IMAGES_DECODED)
    assert images["n"] == 2 * 16 and images["ok"] == images["n"], images  # 12 visuals + 4 overlays per input
    captions = browser.eval("[...document.images].map(i => i.alt)")
    assert {"real_A_overlay", "fake_B_overlay", "real_B_overlay", "fake_A_overlay"} <= set(captions)
    header = browser.eval("document.querySelector('h1').textContent")
    assert "pages" in header and "latest" in header
    assert "ins_max" in browser.eval("document.querySelector('details pre').textContent")


@contextlib.contextmanager
def visdom_server(tmp_path: Path, port: int):
    """``python -m visdom.server`` as a user starts it, with the network beyond loopback unreachable (a dead
    proxy for Python's HTTP clients), so the server only starts if its assets are installed locally."""
    dead = "http://127.0.0.1:9"
    env = {
        **os.environ,
        "http_proxy": dead,
        "https_proxy": dead,
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "no_proxy": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    log = open(tmp_path / "visdom.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "visdom.server",
            "-port",
            str(port),
            *"--hostname 127.0.0.1 -bind_local -env_path".split(),
            str(tmp_path / "visdom_envs"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"visdom.server did not start:\n{(tmp_path / 'visdom.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
@needs_browser
def test_live_visdom_server_offline(toy_root, tmp_path, browser, capsys):
    check = subprocess.run(
        [sys.executable, "scripts/install_visdom_assets.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, f"{check.stdout} Run: python scripts/install_visdom_assets.py"
    import visdom

    port, env = free_port(), "instagan_test"
    with visdom_server(tmp_path, port):
        args = [
            "--dataroot",
            str(toy_root),
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--name",
            "live",
            *RUN,
            *"--display_id 1 --display_server http://127.0.0.1 --display_port".split(),
            str(port),
            "--display_env",
            env,
        ]
        stdout = run_main(capsys, "train", args)
        assert visdom_lines(stdout) == []  # connected: no warning

        client = visdom.Visdom(
            server="http://127.0.0.1", port=port, env=env, raise_exceptions=True, use_incoming_socket=False
        )
        windows = json.loads(client.get_window_data(env=env))
        loss = windows["1"]["content"]["data"]
        assert [trace["name"] for trace in loss] == list(LOSSES)
        assert all(len(trace["x"]) == 2 for trace in loss)  # two prints (2 images, --print_freq 1)
        assert windows["2"]["type"] == "image" and windows["2"]["content"]["src"].startswith("data:image")
        assert windows["3"]["type"] == "text"

        browser.open(f"http://127.0.0.1:{port}/env/{env}")
        rendered = browser.wait_for(
            "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= 10 &&"
            " [...document.images].some(i => i.complete && i.naturalWidth > 0)"
        )
        shot = browser.screenshot(Path(os.environ.get("VISDOM_SCREENSHOT_DIR", tmp_path)) / "visdom_offline.png")
        assert rendered, f"Visdom's page did not render the plot and the image; see {shot}"
        legend = browser.eval("[...document.querySelectorAll('.js-plotly-plot .legendtext')].map(t => t.textContent)")
        assert set(LOSSES) <= set(legend)

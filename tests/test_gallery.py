"""The report's video gallery (lipbench.report.gallery): previews made once, pages that
name every clip, model and preview, and, in headless Chromium over the DevTools
protocol, videos that load and play from the one play button, a sortable clip list and
no console errors."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import av
import pytest

from lipbench.cli import main
from lipbench.report.gallery import write_gallery
from lipbench.rundir import RunDir
from tests.conftest import in_ci, require_module

CLIPS, FRAMES = 2, 25


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A small demo run (2 clips x 25 frames, 4 models); its report made the gallery."""
    root = tmp_path_factory.mktemp("gallery")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIPBENCH_CACHE", str(root / "cache"))
        assert main(["demo", "--out", str(root / "run"), "--clips", str(CLIPS), "--frames", str(FRAMES)]) == 0
    return root / "run"


def _models(run):
    return list(json.loads((run / "results.json").read_text())["models"])


def _previews(run):
    return sorted((run / "previews").rglob("*.mp4"))


def test_previews_are_h264_with_every_frame(demo_run):
    models = _models(demo_run)
    previews = _previews(demo_run)
    assert len(previews) == CLIPS * (len(models) + 1)
    for path in previews:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = list(c.decode(stream))
            assert len(frames) == FRAMES and frames[0].format.name == "yuv420p"
            assert frames[0].height <= 256
            has_audio = bool(c.streams.audio)
        assert has_audio == (path.parent.name == "reference")  # the driving audio plays once, from the reference
        head = path.read_bytes()[:4096]
        assert b"moov" in head  # +faststart: the index before the media data


def test_second_report_reuses_previews(demo_run):
    before = {p: p.stat().st_mtime_ns for p in _previews(demo_run)}
    main(["report", str(demo_run)])  # `lipbench report DIR` again
    assert {p: p.stat().st_mtime_ns for p in _previews(demo_run)} == before
    stats = write_gallery(RunDir(demo_run), progress=False)
    assert stats["made"] == 0 and stats["reused"] == len(before)
    # a touched video (same bytes) is not remade; a changed one is, and only it
    video = demo_run / "videos" / "still" / "synth_000.mkv"
    os.utime(video)
    assert write_gallery(RunDir(demo_run), progress=False)["made"] == 0
    shutil.copyfile(demo_run / "videos" / "procedural" / "synth_000.mkv", video)
    assert write_gallery(RunDir(demo_run), progress=False)["made"] == 1
    assert "Watch the videos: [gallery/index.html](gallery/index.html)" in (demo_run / "report.md").read_text()
    assert "href='gallery/index.html'" in (demo_run / "report.html").read_text()


def test_pages_list_every_clip_model_and_preview(demo_run):
    models = _models(demo_run)
    rows = [json.loads(line) for line in (demo_run / "per_clip.jsonl").read_text().splitlines()]
    index = (demo_run / "gallery" / "index.html").read_text()
    for model in models:
        assert f">{model}</th>" in index
    for row in rows:
        assert f"href='{row['clip']}.html'" in index
        assert f"data-v='{float(row['psnr@full'])!r}'" in index
    for clip in {r["clip"] for r in rows}:
        page_path = demo_run / "gallery" / f"{clip}.html"
        page = page_path.read_text()
        sources = re.findall(r"<video [^>]*src='([^']+)'", page)
        assert len(sources) == len(models) + 1 and len(re.findall(r"<video ", page)) == len(models) + 1
        assert sum("muted" in tag for tag in re.findall(r"<video [^>]*>", page)) == len(models)
        for src in sources:
            assert not src.startswith(("/", "http", "file:"))
            assert (page_path.parent / src).resolve().is_file()
        assert page.count("id='play'") == 1 and page.count("id='scrub'") == 1
        for model in models:
            row = next(r for r in rows if r["model"] == model and r["clip"] == clip)
            assert f"{row['ssim@full']:,.3f}" in page
    for page in (demo_run / "gallery").glob("*.html"):  # offline: nothing fetched from elsewhere
        assert not re.search(r"(src|href)=['\"](https?:|//)", page.read_text())


# ---------------------------------------------------------------------------- the browser


def chromium_binary() -> str:
    for name in (
        os.environ.get("LIPBENCH_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ):
        if name and shutil.which(name):
            return shutil.which(name)
    message = "no chromium binary found (apt-get install -y chromium, or set LIPBENCH_CHROMIUM)"
    if in_ci():
        pytest.fail(f"{message}, and CI is set: CI needs it for the gallery's browser test", pytrace=False)
    pytest.skip(message)


class Browser:
    """Headless Chromium driven over the DevTools protocol: one page, its console errors."""

    def __init__(self, binary: str):
        websocket = require_module("websocket", "websocket-client is needed to drive Chromium")
        self.profile = tempfile.mkdtemp(prefix="lipbench-chromium-")
        args = [
            binary,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            "--autoplay-policy=no-user-gesture-required",
            "--no-first-run",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--window-size=1400,900",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail("chromium did not start its DevTools endpoint", pytrace=False)
            time.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=30, suppress_origin=True)
        self.next_id, self.session, self.errors = 0, None, []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, event):
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            self.errors.append(
                params["exceptionDetails"].get("exception", {}).get("description")
                or params["exceptionDetails"].get("text")
            )
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(params["entry"].get("text"))

    def js(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, path: Path):
        self.send("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("document.readyState === 'complete'")

    def wait_for(self, expression, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.js(expression):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}")

    def click(self, selector):
        """A real mouse click (a user gesture) at the middle of the element."""
        x, y = self.js(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self):
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    b = Browser(chromium_binary())
    yield b
    b.close()


def test_clip_page_plays_in_chromium(browser, demo_run):
    n_videos = len(_models(demo_run)) + 1
    browser.open(demo_run / "gallery" / "synth_001.html")
    # every video loaded (decoded its first frame) and none failed
    browser.wait_for(
        f"(() => {{ const v = [...document.querySelectorAll('video')];"
        f" return v.length === {n_videos} && v.every(x => x.readyState >= 2 && !x.error); }})()"
    )
    assert browser.js("[...document.querySelectorAll('video')].every(v => v.currentTime < 0.1)")
    assert browser.js("document.querySelectorAll('button#play').length") == 1
    browser.click("#play")
    # each video's clock advances from the one button
    browser.wait_for("[...document.querySelectorAll('video')].every(v => v.currentTime > 0.3)", timeout=10)
    assert browser.js("document.querySelector('video.master').muted") is False
    assert browser.js("[...document.querySelectorAll('video:not(.master)')].every(v => v.muted)")
    # pause, then step one frame back: every video shows the same frame
    browser.click("#play")
    browser.wait_for("[...document.querySelectorAll('video')].every(v => v.paused)")
    browser.click("#prev")
    times = browser.js("[...document.querySelectorAll('video')].map(v => v.currentTime)")
    assert max(times) - min(times) < 1e-6
    browser.js("document.getElementById('closeup').click()")
    assert browser.js("document.body.classList.contains('closeup')")
    assert browser.errors == []


def test_index_sorts_in_chromium(browser, demo_run):
    rows = [json.loads(line) for line in (demo_run / "per_clip.jsonl").read_text().splitlines()]
    browser.open(demo_run / "gallery" / "index.html")
    order = "[...document.querySelectorAll('#clips tbody tr')].map(r => r.cells[0].textContent)"
    clips = browser.js(order)
    assert sorted(clips) == sorted({r["clip"] for r in rows})
    # the psnr@full column of the first non-reference model with different values per clip
    models = _models(demo_run)
    headers = browser.js("[...document.querySelectorAll('th[data-col]')].map(h => [h.dataset.col, h.textContent])")
    metrics_per_model = (len(headers) - 1) // len(models)
    for i, model in enumerate(models):
        values = {r["clip"]: r["psnr@full"] for r in rows if r["model"] == model}
        if len(set(values.values())) == len(values):
            break
    col = next(
        int(c)
        for c, text in headers[1 + i * metrics_per_model : 1 + (i + 1) * metrics_per_model]
        if text.startswith("psnr@full")
    )
    worst_first = sorted(values, key=values.get)  # psnr: higher is better, so the lowest first
    browser.click(f"th[data-col='{col}']")
    assert browser.js(order) == worst_first
    browser.click(f"th[data-col='{col}']")
    assert browser.js(order) == worst_first[::-1]
    browser.click("th[data-col='0']")
    assert browser.js(order) == sorted(clips)
    assert browser.errors == []

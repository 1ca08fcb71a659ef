"""The report in a real browser: headless Chromium loads it, logs no error, fetches nothing, shows every plot.

Chromium is driven over the DevTools protocol through a pipe (--remote-debugging-pipe: JSON
messages ending in NUL on file descriptors 3 and 4), so no websocket client and no network are
needed. Skips only when Chromium is not installed (Debian: apt-get install -y chromium).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.judge.outcome import FINDING_HOLDS, FINDING_REFUTED
from harness.note import CLAIMS
from harness.report import write_report
from harness.report.render import STATUS_STYLES, css_class
from harness.report.sample import sample_run
from harness.report.write import write_document
from tests.test_hostile_report import layer_map_document
from tests.test_report import XSS

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


class Browser:
    """Chromium over --remote-debugging-pipe; `send` waits for the answer, `events` collects the rest."""

    def __init__(self, profile_dir: Path, timeout_s: float = 60.0) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds() -> None:  # Chromium reads commands on fd 3 and writes answers on fd 4
            os.dup2(to_browser_r, 3)  # from_browser_w was opened after to_browser_r, so it is not 3
            os.dup2(from_browser_w, 4)
            os.set_inheritable(3, True)  # dup2 onto the same number keeps close-on-exec
            os.set_inheritable(4, True)

        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=child_fds,
            close_fds=False,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.timeout_s = timeout_s
        self.events: list[dict] = []
        self._buffer = b""
        self._next_id = 0

    def send(self, method: str, session: str | None = None, **params: object) -> dict:
        self._next_id += 1
        message: dict = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str) -> dict:
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            event = self._read()
            self.events.append(event)
            if event.get("method") == "Page.javascriptDialogOpening":  # it would block the load: dismiss it
                self.send("Page.handleJavaScriptDialog", event.get("sessionId"), accept=True)

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"Chromium said nothing for {self.timeout_s:g} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit code {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:
            self.process.kill()
        self.process.wait(timeout=30)
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture(scope="module")
def sample() -> tuple[list, dict]:
    return sample_run("minilm")


@pytest.fixture(scope="module")
def report(tmp_path_factory, sample) -> Path:
    outcomes, info = sample
    info = {**info, "command": f"pytest claims/ {XSS}"}
    html, _ = write_report(outcomes, info, tmp_path_factory.mktemp("browser") / "claims.html")
    return html


@pytest.fixture(scope="module")
def layer_map_report(tmp_path_factory, sample) -> Path:
    """Three models with a layer map over six blocks (tests.test_hostile_report.layer_map_document)."""
    html, _ = write_document(layer_map_document(*sample), tmp_path_factory.mktemp("browser") / "layers.html")
    return html


# plots: each figure's size, its smallest plot area (the axes' clip rectangles, in CSS px) and how many of its texts
# lie outside it (a cut-off legend or label; 5 px allowed: the browser's font sets a superscript a little higher than
# matplotlib's metrics); badges: every status badge's class and computed colours.
PAGE_FACTS = """JSON.stringify({
    plots: [...document.querySelectorAll('svg.plot')].map(s => {
        const r = s.getBoundingClientRect(), scale = r.height / s.viewBox.baseVal.height;
        const areas = [...s.querySelectorAll('clipPath rect')].map(c => c.height.baseVal.value * scale);
        const outside = [...s.querySelectorAll('text')].filter(t => {
            const b = t.getBoundingClientRect();
            return b.left < r.left - 5 || b.right > r.right + 5 || b.top < r.top - 5 || b.bottom > r.bottom + 5;
        }).length;
        return {w: r.width, h: r.height, visible: s.checkVisibility(), shapes: s.querySelectorAll('path, use, text').length,
                area: Math.min(...areas), outside: outside};
    }),
    badges: [...document.querySelectorAll('.status')].map(b => {
        const c = getComputedStyle(b);
        return {status: b.textContent, cls: b.className, background: c.backgroundColor, color: c.color, w: b.offsetWidth};
    }),
    claims: document.querySelectorAll('section.claim').length,
    scripts: document.scripts.length,
    text: document.body.textContent.includes(XSS_TEXT)  // textContent: the prompts sit in closed <details>
})"""


def look_at(page: Path, profile_dir: Path) -> tuple[dict, list[dict], list[str]]:
    """Load `page` in Chromium: (facts from PAGE_FACTS, error events, URLs requested)."""
    browser = Browser(profile_dir)
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session)
        browser.send("Emulation.setDeviceMetricsOverride", session, width=1200, height=900, deviceScaleFactor=1, mobile=False)
        browser.send("Page.navigate", session, url=page.as_uri())
        browser.wait_for("Page.loadEventFired")
        script = PAGE_FACTS.replace("XSS_TEXT", json.dumps(XSS))
        facts = json.loads(browser.send("Runtime.evaluate", session, expression=script, returnByValue=True)["result"]["value"])
        browser.send("Runtime.evaluate", session, expression="1", returnByValue=True)  # let late messages arrive
    finally:
        browser.close()
    errors = [e for e in browser.events if _is_error(e)]
    requests = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    return facts, errors, requests


def screenshot(page: Path, out: Path, profile_dir: Path, *, width: int = 1200, height: int = 900, anchor: str | None = None) -> None:
    """A PNG of `page` as a reader first sees it (or scrolled to element `anchor`), `width` × `height` CSS px.

    python -m tests.test_report_browser reports/claims.html docs/report-minilm.png [--anchor claim-C3]
    """
    browser = Browser(profile_dir)
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        browser.send("Page.enable", session)
        browser.send("Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1, mobile=False)
        browser.send("Page.navigate", session, url=page.as_uri())
        browser.wait_for("Page.loadEventFired")
        top = 0.0
        if anchor:
            where = f"document.getElementById({json.dumps(anchor)}).getBoundingClientRect().top + window.scrollY"
            top = browser.send("Runtime.evaluate", session, expression=where, returnByValue=True)["result"]["value"]
        clip = {"x": 0, "y": top, "width": width, "height": height, "scale": 1}
        shot = browser.send("Page.captureScreenshot", session, format="png", clip=clip, captureBeyondViewport=True)
        out.write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()


def _is_error(event: dict) -> bool:
    method, params = event.get("method"), event.get("params", {})
    return (
        method == "Runtime.exceptionThrown"
        or (method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"))
        or (method == "Log.entryAdded" and params["entry"].get("level") == "error")
        or method == "Page.javascriptDialogOpening"
    )


def test_chromium_shows_every_plot_without_errors(report, tmp_path):
    facts, errors, requests = look_at(report, tmp_path / "profile")
    html = report.read_text()
    assert facts["claims"] == len(CLAIMS) and facts["scripts"] == 0
    # the overview and one per claim, but C6: minilm has no LM head, so nothing to draw
    assert len(facts["plots"]) == html.count('class="plot"') == 1 + len(CLAIMS) - 1
    _every_plot_shown_whole(facts)
    _every_badge_legible(facts)
    assert facts["text"], "the XSS string must show as text"
    assert errors == []
    assert requests == [report.as_uri()], f"the page fetched more than itself: {requests}"


def test_a_three_model_layer_map_shows_findings_and_whole_figures(layer_map_report, tmp_path):
    """Issue 19 rows 3 and 10: finding badges have their colours (not white on white), no figure collapses."""
    facts, errors, requests = look_at(layer_map_report, tmp_path / "profile")
    assert errors == [] and requests == [layer_map_report.as_uri()]
    _every_plot_shown_whole(facts)
    _every_badge_legible(facts)
    seen = {b["status"] for b in facts["badges"]}
    assert {FINDING_HOLDS, FINDING_REFUTED} <= seen, seen
    finding = next(b for b in facts["badges"] if b["status"] == FINDING_REFUTED)
    assert finding["cls"] == "status st-finding-refuted" and finding["background"] == _rgb(STATUS_STYLES[FINDING_REFUTED][0])


def _every_plot_shown_whole(facts: dict) -> None:
    for n, plot in enumerate(facts["plots"]):
        assert plot["visible"] and plot["w"] > 100 and plot["h"] > 50 and plot["shapes"] > 10, f"plot {n} is not shown: {plot}"
        assert plot["area"] > 60 and plot["outside"] == 0, f"plot {n} is squeezed or cut off: {plot}"


def _every_badge_legible(facts: dict) -> None:
    """Each status badge is drawn in its status's own colours, and its text differs from its background."""
    for badge in facts["badges"]:
        style = STATUS_STYLES.get(badge["status"])
        assert style is not None and badge["cls"] == f"status {css_class(badge['status'])}", badge
        assert (badge["background"], badge["color"]) == (_rgb(style[0]), _rgb(style[1])) and badge["w"] > 10, badge
        assert badge["background"] != badge["color"], badge


def _rgb(colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(colour[k : k + 2], 16) for k in (1, 3, 5)))


def test_the_browser_check_catches_a_broken_page(report, tmp_path):
    """The negative control: a script error, an alert, an outside fetch, a hidden plot and a white badge are all seen."""
    html = report.read_text()
    broken = html.replace("</body>", '<img src="http://127.0.0.1:9/x.png"><script>alert(1); undefinedFunction();</script></body>').replace(
        '<svg role="img"', '<svg style="display:none" role="img"', 1
    )
    broken = broken.replace('<span class="status st-holds">', '<span class="status st-holds" style="background: #ffffff">', 1)
    page = tmp_path / "broken.html"
    page.write_text(broken)
    facts, errors, requests = look_at(page, tmp_path / "profile")
    assert facts["scripts"] == 1 and not facts["plots"][0]["visible"]
    with pytest.raises(AssertionError, match=r"255, 255, 255"):
        _every_badge_legible(facts)  # a white badge on white is seen
    methods = {e["method"] for e in errors}
    assert {"Runtime.exceptionThrown", "Page.javascriptDialogOpening"} <= methods, methods
    assert "http://127.0.0.1:9/x.png" in requests


if __name__ == "__main__":  # screenshots for the README: page, png, [--anchor ID] [--height PX]
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Screenshot a claim report in headless Chromium.")
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--anchor", help="element id to scroll to, e.g. claim-C3")
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as profile:
        screenshot(args.page.resolve(), args.png, Path(profile), height=args.height, anchor=args.anchor)

"""The state report in a real browser: headless Chromium (Debian package ``chromium``, installed by .ci/run) opens
it from disk, and through the DevTools protocol we check that nothing was logged as an error, nothing was fetched
from the network, every chart rendered with all its marks, and every agency link opens its feedback page. A
screenshot is kept as a test artifact (``test-artifacts/state_report.png``). Skipped where Chromium is absent.

The DevTools protocol is spoken over a minimal standard-library WebSocket client (below), so the test needs no
extra package.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from jc_pipeline_tests.report_support import build_report_state, write_report_set

CHROMIUM = os.environ.get("JC_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1"]
TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)),
                                reason=f"{CHROMIUM} not installed (Debian package 'chromium')")


# ---- a minimal WebSocket client (RFC 6455: client frames masked, text messages, no extensions) -----------------


class WebSocket:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = bytearray()
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.buffer = bytearray(rest)

    def send(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        n = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
                                  if n < 65536 else bytes([0x80 | 127]) + struct.pack("!Q", n))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv(self) -> str:
        message = bytearray()
        while True:
            first, second = self._take(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._take(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._take(8))[0]
            payload = self._take(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("browser closed the DevTools connection")
            if opcode in (0x9, 0xA):  # ping / pong: DevTools does not send them, ignore if it does
                continue
            message += payload
            if first & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("DevTools connection closed")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data


class DevTools:
    """Commands and events of one page target."""

    def __init__(self, url: str) -> None:
        self.ws = WebSocket(url)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str, since: int) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not any(e.get("method") == method for e in self.events[since:]):
            assert time.monotonic() < deadline, f"no {method} within {TIMEOUT} s"
            self.events.append(json.loads(self.ws.recv()))

    def open(self, url: str) -> dict:
        """Navigate and wait for the load event; returns Page.navigate's result (errorText on failure)."""
        since = len(self.events)
        result = self.call("Page.navigate", url=url)
        if "errorText" not in result:
            self.wait_for("Page.loadEventFired", since)
        return result

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"]["value"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Chromium with a DevTools endpoint on a free port; yields a DevTools connection to its first page."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    endpoint: list[str] = []
    found = threading.Event()

    def drain() -> None:  # read stderr to the end so Chromium never blocks on a full pipe
        for line in process.stderr:
            if "DevTools listening on" in line and not endpoint:
                endpoint.append(line.split("DevTools listening on", 1)[1].strip())
                found.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert found.wait(TIMEOUT), "Chromium did not open its DevTools endpoint"
        port = urlsplit(endpoint[0]).port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=TIMEOUT) as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.call(f"{domain}.enable")
        tools.call("Emulation.setDeviceMetricsOverride", width=1280, height=2000, deviceScaleFactor=1, mobile=False)
        yield tools
        tools.ws.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    con = build_report_state(root / "warehouse.duckdb")
    index = write_report_set(con, root / "reports")
    con.close()
    return index


def problems(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions, browser log errors and any request that is not a local file."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            found.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
            found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file://", "data:", "about:")):
                found.append(f"network fetch: {url}")
    return found


def test_report_renders_in_chromium(browser, report_page):
    since = len(browser.events)
    result = browser.open(report_page.as_uri())
    assert "errorText" not in result, result
    assert browser.evaluate("document.title") == "Justice Counts state report"

    charts = browser.evaluate("""[...document.querySelectorAll('svg.chart')].map(svg => {
        const box = svg.getBoundingClientRect();
        const marks = [...svg.querySelectorAll('.mark')];
        return {announced: +svg.dataset.points, marks: marks.length, width: box.width, height: box.height,
                drawn: marks.filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; }).length,
                title: svg.querySelector('title').textContent};
    })""")
    assert len(charts) > 5
    for chart in charts:
        assert chart["width"] > 100 and chart["height"] > 20, chart
        assert chart["marks"] == chart["announced"] > 0, chart
        assert chart["drawn"] == chart["marks"], chart  # every point and bar has a rendered box

    ARTIFACTS.mkdir(exist_ok=True)
    shot = browser.call("Page.captureScreenshot", format="png")
    (ARTIFACTS / "state_report.png").write_bytes(base64.b64decode(shot["data"]))
    assert (ARTIFACTS / "state_report.png").stat().st_size > 10_000
    assert problems(browser.events[since:]) == []


def test_agency_links_open_their_feedback_pages(browser, report_page):
    browser.open(report_page.as_uri())
    links = browser.evaluate("""[...new Set([...document.querySelectorAll('a[href$=".html"]')]
        .map(a => a.href).filter(h => h.includes('/agencies/')))]""")
    assert len(links) >= 11  # every agency of the roster
    since = len(browser.events)
    for link in links:
        result = browser.open(link)
        assert "errorText" not in result, (link, result)
        assert browser.evaluate("document.title").startswith("Feedback — "), link
        assert browser.evaluate("document.querySelector('h1') !== null"), link
    # From a feedback page back to the index of all agencies.
    assert "errorText" not in browser.open(links[0].rsplit("/", 1)[0] + "/index.html")
    assert browser.evaluate("document.querySelectorAll('a[href$=\".html\"]').length") >= 1
    assert problems(browser.events[since:]) == []

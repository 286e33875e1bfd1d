"""A minimal W3C WebDriver client over chromedriver, enough to open a file and read what a person
sees (rendered text, visibility) and take screenshots. No selenium needed: plain HTTP."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element identifier
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1600",
]


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    def __init__(self, chromium: str, driver: str):
        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="authml-chromium-")
        self.process = subprocess.Popen(
            [driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_ready()
        options = {"binary": chromium, "args": [*CHROMIUM_ARGS, f"--user-data-dir={self.profile}"]}
        created = self._call(
            "POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}}
        )
        self.session = created["sessionId"]

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._call("GET", "/status").get("ready"):
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"chromedriver did not answer on port {self.port} within {timeout}s")

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["value"] or {}

    def _session(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, path: Path) -> None:
        self._session("POST", "/url", {"url": path.resolve().as_uri()})

    def element(self, css: str) -> str:
        return self._session("POST", "/element", {"using": "css selector", "value": css})[ELEMENT_KEY]

    def visible_text(self, element: str) -> str:
        """The rendered text, as WebDriver defines it: hidden elements contribute nothing."""
        return self._session("GET", f"/element/{element}/text")

    def displayed(self, element: str) -> bool:
        return bool(self._session("GET", f"/element/{element}/displayed"))

    def count(self, css: str) -> int:
        return len(self._session("POST", "/elements", {"using": "css selector", "value": css}))

    def script(self, source: str):
        return self._session("POST", "/execute/sync", {"script": source, "args": []})

    def screenshot(self, target: Path) -> Path:
        target.write_bytes(base64.b64decode(self._session("GET", "/screenshot")))
        return target

    def close(self) -> None:
        try:
            self._session("DELETE", "")
        finally:
            self.process.terminate()
            self.process.wait(timeout=10)
            shutil.rmtree(self.profile, ignore_errors=True)

"""Headless Chromium for the tests, driven over the DevTools protocol (CDP): open a page as a
person would, wait for what they would wait for, click, read the rendered DOM, take a
screenshot. Debian's `chromium` package (`make test` installs it) and the `websockets`
client already in the venv; no browser download, no other dependency."""

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
]
_MESSAGE_IDS = itertools.count(1)


class BrowserError(RuntimeError):
    pass


class Page:
    """One tab. Every call waits for Chromium's answer; `timeout` is in seconds."""

    def __init__(self, socket, session_id: str | None) -> None:
        self._socket = socket
        self._session = session_id  # None: the browser itself

    def send(self, method: str, timeout: float = 30, **params: Any) -> dict:
        message_id = next(_MESSAGE_IDS)
        message = {"id": message_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"{method}: no answer from Chromium within {timeout} s")
            reply = json.loads(self._socket.recv(timeout=remaining))
            if reply.get("id") != message_id:
                continue  # an event, or the answer to an earlier call that timed out
            if "error" in reply:
                raise BrowserError(f"{method}: {reply['error']}")
            return reply["result"]

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(
                f"{expression[:80]!r}: {details.get('exception', {}).get('description', details)}"
            )
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60, what: str | None = None) -> Any:
        """Poll until the expression is truthy and return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"waited {timeout} s for {what or expression}")
            time.sleep(0.25)

    def goto(self, url: str, timeout: float = 60) -> None:
        """Navigate and wait for the load event (scripts may still be fetching data)."""
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout=timeout, what=f"{url} to load")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''")

    def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        """Wait until the rendered page shows every needle; returns the page's text."""
        check = " && ".join(f"document.body.innerText.includes({json.dumps(n)})" for n in needles)
        self.wait_for(f"!!document.body && {check}", timeout=timeout, what=f"text {needles}")
        return self.text()

    def settle(self, quiet: float = 1.0, timeout: float = 8) -> None:
        """Wait until the page stops changing (a single-page app fetching its data): the same
        text and number of elements for `quiet` seconds, or give up quietly after `timeout`.
        Digits are ignored: clocks and countdowns tick on a settled page."""
        state = (
            "[document.body.innerText.replace(/[0-9]+/g, '#'),"
            " document.getElementsByTagName('*').length]"
        )
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            current = self.evaluate(state)
            if current != last:
                last, since = current, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.2)

    def click(self, selector: str, text: str | None = None, timeout: float = 30) -> None:
        """A real mouse click in the middle of the first visible element matching the CSS
        selector (and containing `text`), as a person would click it."""
        find = f"""
            (() => {{
                const wanted = {json.dumps(text)};
                for (const el of document.querySelectorAll({json.dumps(selector)})) {{
                    if (wanted !== null && !el.innerText.includes(wanted)) continue;
                    el.scrollIntoView({{block: 'center'}});
                    const box = el.getBoundingClientRect();
                    if (box.width > 0 && box.height > 0 && !el.disabled)
                        return [box.x + box.width / 2, box.y + box.height / 2];
                }}
                return null;
            }})()
        """
        x, y = self.wait_for(find, timeout=timeout, what=f"{selector} {text or ''} to click")
        for event in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=event, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the whole page (not only the window) at `path`."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            )
        data = self.send("Page.captureScreenshot", timeout=60, **params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


def screenshots_dir(tmp_path_factory) -> Path:
    """Where the tests leave their screenshots to look at: $DMP_SCREENSHOTS_DIR, else
    `screenshots/` in pytest's base temporary folder (pytest keeps the last three runs')."""
    chosen = os.environ.get("DMP_SCREENSHOTS_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def chromium(profile_dir: Path, width: int = 1400, height: int = 1000) -> Iterator[Page]:
    """A headless Chromium with a throw-away profile in `profile_dir`, and one tab in it."""
    if not Path(CHROMIUM).exists():
        raise BrowserError(f"no {CHROMIUM}: `make chromium` installs Debian's chromium package")
    profile_dir = Path(profile_dir)
    profile_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile_dir}",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Chromium writes the port it chose and the browser's websocket path to this file.
        active_port = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active_port.exists() and len(active_port.read_text().split()) == 2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"{CHROMIUM} did not start (exit code {process.poll()})")
            time.sleep(0.1)
        port, path = active_port.read_text().split()
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30) as socket:
            browser = Page(socket, session_id=None)
            target = browser.send("Target.createTarget", url="about:blank")["targetId"]
            session = browser.send("Target.attachToTarget", targetId=target, flatten=True)
            page = Page(socket, session["sessionId"])
            page.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield page
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

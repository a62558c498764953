"""The browser tests' one way to open a self-contained HTML report in a real headless Chromium
(Debian's ``chromium``, driven by Playwright) and watch what it does.

Missing Chromium or Playwright is a failure, not a skip: setup must install them (``apt-get
install chromium``; ``pip install playwright``, never ``playwright install``, which would download
a browser build).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL = ("file:", "data:", "blob:")
"""URL schemes a self-contained report may request; anything else went to the network."""
PNG = b"\x89PNG\r\n\x1a\n"


@contextmanager
def chromium(profile: Path) -> Iterator[BrowserContext]:
    """A fresh headless Chromium (user-data dir ``profile``: no state from other runs), 1280 x 900."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (found: {shutil.which('chromium')}); install Debian's browser: "
                    "apt-get install -y chromium")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()


@dataclass
class Opened:
    """A report open in a page, with what went wrong in it and every URL it requested."""

    page: Page
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def network(self) -> list[str]:
        """The requests that left the machine (a self-contained report makes none)."""
        return [url for url in self.requests if not url.startswith(LOCAL)]

    def assert_clean(self) -> None:
        """No console error, page error or dialog (a script that should not run), no network request."""
        assert self.problems == []
        assert self.network == []


def open_report(context: BrowserContext, path: Path) -> Opened:
    """Open ``path`` in a new page, recording console errors, page errors, dialogs and requests,
    and wait until every plotly chart on it has drawn."""
    page = context.new_page()
    opened = Opened(page)

    def dialog(box: Dialog) -> None:  # an alert() in the report: text that should have been escaped ran
        opened.problems.append(f"a script ran: {box.message}")
        box.dismiss()

    page.on("console", lambda msg: opened.problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda error: opened.problems.append(f"page error: {error}"))
    page.on("dialog", dialog)
    page.on("request", lambda request: opened.requests.append(request.url))
    page.goto(path.as_uri(), wait_until="load")
    charts = len(chart_ids(page))
    if charts:
        page.wait_for_function("n => document.querySelectorAll('.plotly-graph-div .main-svg').length >= n",
                               arg=charts, timeout=30_000)
    return opened


def chart_ids(page: Page) -> list[str]:
    """The ids of the plotly charts, in page order."""
    return list(page.eval_on_selector_all(".plotly-graph-div", "ds => ds.map(d => d.id)"))


def headings(page: Page) -> list[str]:
    """The section headings (``section > h2``), in page order."""
    return list(page.eval_on_selector_all("section > h2", "hs => hs.map(h => h.textContent)"))


def count(page: Page, selector: str) -> int:
    """How many elements match ``selector``."""
    return int(page.eval_on_selector_all(selector, "es => es.length"))


def sort_by(page: Page, table: str, header: str) -> list[float]:
    """Click the column ``header`` of the table with id ``table``; return that column's sort keys
    (``data-v``) in the order now shown."""
    headers = page.eval_on_selector_all(f"#{table} thead th", "ths => ths.map(th => th.textContent)")
    column = headers.index(header)
    page.click(f"#{table} thead th:nth-child({column + 1})")
    return [float(v) for v in page.eval_on_selector_all(
        f"#{table} tbody tr", f"rs => rs.map(r => r.cells[{column}].getAttribute('data-v'))")]


def screenshot(page: Page, path: Path, min_bytes: int = 0) -> None:
    """A full-page PNG screenshot at ``path``, of at least ``min_bytes``."""
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > min_bytes

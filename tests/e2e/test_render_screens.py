"""The rendered issue in a real headless Chromium at 375 px and 600 px: no horizontal overflow.

Page and images come from an HTTP server this test starts on 127.0.0.1; every other request is
aborted, so nothing leaves the machine. The browser and the screenshot folder (copied to
$DIGEST_TEST_SCREENSHOTS when set, to look at the design) come from tests/e2e/conftest.py.
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from digest.render.issue import render_issue
from tests.fixtures.sample_issue import sample_issue_view

IMAGE = """<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="600" viewBox="0 0 1200 600">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
<stop offset="0" stop-color="#2d6cdf"/><stop offset="1" stop-color="#7fb3ff"/>
</linearGradient></defs>
<rect width="1200" height="600" fill="url(#g)"/>
<circle cx="900" cy="200" r="140" fill="#ffffff" fill-opacity="0.25"/>
<rect x="120" y="380" width="520" height="60" rx="8" fill="#ffffff" fill-opacity="0.6"/></svg>"""
# A summary with what breaks narrow layouts: a wide image, a long unbreakable URL, a table.
# Its image URL is absolute, as collection stores it (render drops relative ones).
WIDE_SUMMARY = (
    '<p>A wide picture: <img src="{base}/wide.svg" width="1200" alt="chart"></p>'
    "<p>https://www.example.org/a/really/long/unbreakable/address/that/goes/on/and/on/forever/"
    "and-on-and-on-and-on-and-on</p>"
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static HTTP server on 127.0.0.1 over a folder holding the issue and its images."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _write_issue(base: str, root: Path) -> Path:
    view = sample_issue_view(image_base=f"{base}/img")
    first = view.groups[0]
    wide = replace(first.items[1], summary_html=WIDE_SUMMARY.format(base=base))
    groups = (replace(first, items=(first.items[0], wide, *first.items[2:])), *view.groups[1:])
    view = replace(view, groups=groups)
    rendered = render_issue(view)
    assert rendered.warnings == ()
    (root / "img").mkdir()
    for index in range(view.item_count):
        (root / "img" / f"news-{index}.svg").write_text(IMAGE)
    (root / "wide.svg").write_text(IMAGE)
    page = root / "issue.html"
    page.write_text(rendered.html, encoding="utf-8")
    return page


@pytest.mark.service
def test_issue_fits_375_and_600_px_without_horizontal_scroll(browser, served, shots):
    base, root = served
    _write_issue(base, root)
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    for width in (375, 600):
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.route("**/*", only_local)
        page.goto(f"{base}/issue.html", wait_until="load")
        metrics = page.evaluate(
            """() => ({
                scroll: document.documentElement.scrollWidth,
                body: document.body.scrollWidth,
                lang: document.documentElement.lang,
                images: [...document.images].map(i => [i.alt, i.naturalWidth,
                         i.getBoundingClientRect().right]),
                h1: document.querySelector('h1').textContent,
            })"""
        )
        page.screenshot(path=str(shots / f"issue-{width}.png"), full_page=True)
        page.close()
        assert metrics["scroll"] <= width, metrics
        assert metrics["body"] <= width, metrics
        assert metrics["lang"] == "en"
        assert metrics["h1"] == "News on Social and Solidarity Economy"
        # Every image loaded from the local server, has alt text and stays in view.
        assert metrics["images"], "the sample issue has images"
        for alt, natural_width, right in metrics["images"]:
            assert alt and natural_width > 0 and right <= width, metrics["images"]
    assert outside == [], f"the email asked for outside resources: {outside}"
    for width in (375, 600):
        assert (shots / f"issue-{width}.png").stat().st_size > 10_000
    shutil.copy(root / "issue.html", shots / "issue.html")  # beside its screenshots

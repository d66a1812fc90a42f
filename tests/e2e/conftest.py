"""What every browser test shares: Debian's Chromium driven by Playwright, and a screenshot
folder in the test's tmp dir, kept for a human in test-output/screenshots/ at the top of the
checkout (gitignored), or in DIGEST_TEST_SCREENSHOTS when set."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
KEEP = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"

# A browser flow on PostgreSQL alone: the embedded SQLite store is driven in the browser by the
# first-run and whole-issue flows, and on both stores by every page's integration test; a
# second browser run of each flow cost about 70 s of the suite.
ON_POSTGRES = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        message = f"{CHROMIUM} is not installed (Debian package chromium)"
        if IN_CI:
            pytest.fail(message + "; CI must run the browser tests")
        pytest.skip(message)
    if IN_CI:
        import playwright.sync_api as sync_api  # CI must have it: no skip
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    if any(folder.iterdir()):
        keep = os.environ.get("DIGEST_TEST_SCREENSHOTS") or KEEP
        shutil.copytree(folder, keep, dirs_exist_ok=True)

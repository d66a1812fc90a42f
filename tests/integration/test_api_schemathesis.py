"""The JSON API against its own OpenAPI document: schemathesis, with the admin's API token, sends
generated requests (valid and invalid) to every operation of the live app on 127.0.0.1, over a
database with lists, items, subscribers and issues. No answer may be a 5xx, and every answer
must be what the document says: documented status, JSON body of the documented shape.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from digest.config import reset_settings
from digest.db import session_factory
from digest.web.app import create_app
from tests.accounts import grant
from tests.conftest import truncate_all
from tests.crash_issue import make_issue
from tests.integration.test_editor_api import API, seed_issue
from tests.integration.test_web_http import live_server

# Cases per operation and mode; the whole run stays well under a minute on two cores.
EXAMPLES = 10
ST = str(Path(sys.executable).with_name("st"))


def populate(url: str) -> None:
    """A draft in one list, an approved issue in another."""
    with session_factory(url)() as session:
        seed_issue(session, subscribers=4)
    make_issue(url, recipients=2, items=3)


def test_every_operation_answers_as_documented(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # PostgreSQL only, to keep the run short: it is the stricter store (NUL bytes, ranges).
    truncate_all(pg_url)
    monkeypatch.setenv("DIGEST_DATABASE_URL", pg_url)
    reset_settings()
    populate(pg_url)
    grant(pg_url)
    headers = [arg for name, value in API.items() for arg in ("--header", f"{name}: {value}")]
    with live_server(create_app()) as base_url:
        result = subprocess.run(
            [
                ST,
                "run",
                f"{base_url}/api/v1/openapi.json",  # fetched with the admin's credentials too
                *headers,
                "--checks=all",
                # A well-formed request may still be refused for the issue's state (400):
                # that is the API's contract, not a defect.
                "--exclude-checks=positive_data_acceptance",
                f"--max-examples={EXAMPLES}",
                "--workers=1",
                "--generation-database=none",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=240,
            check=False,
        )
    report = result.stdout[-12000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    operations = re.search(r"Operations:\s+(\d+) selected / (\d+) total", result.stdout)
    tested = re.search(r"Tested:\s+(\d+)", result.stdout)
    assert operations and tested, report
    assert int(operations[1]) == int(operations[2]) == int(tested[1]) >= 29, report

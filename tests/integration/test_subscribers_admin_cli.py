"""`digest subscribers` add, edit, unsubscribe, export, data, erase and the suppression
commands, on both stores, through the real entry point: the same service functions as the
admin's pages, the audit log by id, bad input one line and exit 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import AuditEntry, SignupRequest
from digest.subscribers.lists import create_list
from digest.subscribers.suppression import is_erased


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from digest.cli import main

    capsys.readouterr()
    code = main(["subscribers", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_runs_a_subscriber_from_add_to_erase(
    db_url: str, session: Session, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    create_list(session, slug="news", name="News")
    create_list(session, slug="jobs", name="Jobs")
    session.commit()

    code, out, err = cli(
        capsys,
        "add",
        "ana@example.org",
        "-l",
        "news",
        "-l",
        "jobs",
        "--name",
        "=cmd|' /C calc'!A0",
        "--status",
        "pending",
    )
    assert code == 0, err
    assert out.splitlines() == [
        "ana@example.org is pending on news",
        "ana@example.org is pending on jobs",
    ]
    assert len(session.scalars(select(SignupRequest)).all()) == 2  # asked by mail

    code, out, err = cli(
        capsys,
        "edit",
        "ana@example.org",
        "--timezone",
        "Europe/Paris",
        "--list",
        "news",
        "--status",
        "confirmed",
    )
    news_id = _list_id(session, "news")
    assert code == 0 and out.strip() == f"timezone, status:{news_id} changed", out + err
    code, _, err = cli(capsys, "edit", "ana@example.org", "--timezone", "Nowhere/City")
    assert code == 2 and len(err.strip().splitlines()) == 1

    code, out, _ = cli(capsys, "unsubscribe", "ana@example.org", "--list", "jobs")
    assert out.strip() == "unsubscribed from jobs"

    code, out, _ = cli(capsys, "export", "--list", "news")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["name"] == "'=cmd|' /C calc'!A0" and rows[0]["status"] == "confirmed"
    code, out, _ = cli(capsys, "export", "--list", "news", "--format", "json")
    assert json.loads(out)[0]["name"] == "=cmd|' /C calc'!A0"

    target = tmp_path / "ana.json"
    code, _, _ = cli(capsys, "data", "ana@example.org", "--out", str(target))
    assert json.loads(target.read_text())["subscriber"]["email"] == "ana@example.org"

    code, _, err = cli(capsys, "erase", "ana@example.org")
    assert code == 2 and "--yes" in err
    code, out, err = cli(capsys, "erase", "ana@example.org", "--yes")
    assert code == 0 and "a hashed suppression is kept" in out, err
    session.expire_all()
    assert is_erased(session, "ana@example.org")
    code, _, err = cli(capsys, "add", "ana@example.org", "-l", "news")
    assert code == 2 and "erased" in err
    code, _, err = cli(capsys, "data", "ana@example.org")
    assert code == 2 and "no subscriber" in err

    code, out, _ = cli(capsys, "suppress", "Spam@Example.org", "--detail", "by phone")
    assert out.strip() == "spam@example.org suppressed"
    code, out, _ = cli(capsys, "suppressed")
    assert "spam@example.org" in out and "erased person (hash)" in out
    code, out, _ = cli(capsys, "unsuppress", "spam@example.org")
    assert code == 0
    code, _, err = cli(capsys, "suppress", "not an address")
    assert code == 2 and "invalid address" in err

    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [e.action for e in entries] == [
        "add_subscriber",
        "edit_subscriber",
        "unsubscribe_subscriber",
        "erase_subscriber",
        "add_suppression",
        "lift_suppression",
    ]
    assert all(e.actor.startswith("cli:") and e.user_id is None for e in entries)
    dumped = json.dumps([[e.target_id, e.detail] for e in entries])
    assert "@" not in dumped


def _list_id(session: Session, slug: str) -> int:
    from digest.models import MailingList

    found = session.scalar(select(MailingList.id).where(MailingList.slug == slug))
    assert found
    return found

"""`digest lists create/edit/link/unlink` and `digest sources add/edit/fetch/disable/enable/
history` on both stores: the same services as the pages and the API, the same checks (a refused
setting is one line and exit 2), and each change in the audit log as done by cli:<login>."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import AuditEntry, MailingList, Source
from tests.fixtures.sources.server import Page, SourceServer, serving
from tests.integration.test_lists_sources_pages import FEED


@pytest.fixture
def server() -> Iterator[SourceServer]:
    with serving() as running:
        running.add(
            "/feed.xml", Page(FEED.format(base=running.base).encode(), "application/rss+xml")
        )
        yield running


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from digest.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_lists_are_created_edited_and_linked_from_the_command_line(
    db_url: str, session: Session, capsys: pytest.CaptureFixture[str], server: SourceServer
) -> None:
    code, _out, err = cli(
        capsys, "lists", "create", "harbour", "--name", "Harbour", "--schedule",
        "weekly fri 17:00", "--timezone", "Asia/Tokyo", "--opt-in", "single", "--send-at", "08:00",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = cli(capsys, "lists", "edit", "harbour", "--reply-to", "desk@example.org",
                         "--public", "--schedule", "daily 06:00")  # fmt: skip
    assert code == 0, err
    assert "changed reply_to, schedule_cron" in out and "daily 06:00 Asia/Tokyo" in out
    code, _out, err = cli(capsys, "lists", "edit", "harbour", "--timezone", "Mars/Base")
    assert code == 2 and "timezone: unknown time zone 'Mars/Base'" in err
    code, _out, err = cli(capsys, "lists", "create", "Bad Slug", "--name", "x")
    assert code == 2 and "slug:" in err

    code, out, err = cli(capsys, "sources", "add", server.url("/feed.xml"), "--list", "harbour")
    assert code == 0, err
    source = session.scalar(select(Source))
    assert source is not None
    sid = str(source.id)
    code, out, err = cli(capsys, "sources", "fetch", sid)
    assert code == 0 and f"source {sid}: 2 items, 2 new" in out, err
    code, out, err = cli(capsys, "sources", "edit", sid, "--name", "Port", "--interval", "90")
    assert code == 0 and "changed name, fetch_interval_minutes" in out, err
    code, out, err = cli(capsys, "sources", "disable", sid)
    assert code == 0 and "disabled" in out
    code, out, err = cli(capsys, "sources", "history", sid)
    assert code == 0 and "new_items" in out
    code, out, err = cli(capsys, "lists", "unlink", "harbour", sid)
    assert code == 0 and "no longer feeds" in out
    code, out, err = cli(capsys, "lists", "link", "harbour", sid)
    assert code == 0 and "feeds list harbour" in out
    code, _out, err = cli(capsys, "sources", "add", "/etc/passwd")
    assert code == 2

    session.expire_all()
    lst = session.scalar(select(MailingList))
    assert lst is not None
    assert (lst.opt_in, lst.send_local_time, lst.private, lst.schedule_cron) == (
        "single", "08:00", False, "0 6 * * *"
    )  # fmt: skip
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(e.action, e.target_kind) for e in entries] == [
        ("create_list", "list"), ("edit_list", "list"), ("add_source", "source"),
        ("fetch_source", "source"), ("edit_source", "source"), ("disable_source", "source"),
        ("unlink_source", "list"), ("link_source", "list"),
    ]  # fmt: skip
    assert all(e.actor.startswith("cli:") and e.address == "cli" for e in entries)

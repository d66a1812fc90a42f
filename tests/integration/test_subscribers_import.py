"""CSV import and export on both stores: bad rows reported and skipped, nobody resurrected."""

import io

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import DigestError
from digest.models import Subscription
from digest.subscribers.lists import create_list
from digest.subscribers.service import add_subscriber, count_by_status, export_csv, import_csv

CSV = """email,name,city
ada@example.org,Ada Lovelace,London
not-an-address,Bad Row,Nowhere
BRUNO@Example.ORG,Bruno,Lisbon
ada@example.org,Ada again,London
,Empty,
chloé@exämple.org,Chloé,Paris
"""


def test_import_reports_bad_rows_and_keeps_the_rest(session: Session) -> None:
    lst = create_list(session, slug="l", name="L")
    result = import_csv(session, lst.id, io.StringIO(CSV))
    assert result.added == 3
    lines = [line for line, _ in result.errors]
    assert lines == [3, 5, 6]
    assert count_by_status(session, lst.id) == {"confirmed": 3}
    out = io.StringIO()
    assert export_csv(session, lst.id, out) == 3
    exported = out.getvalue()
    assert "bruno@example.org" in exported and "chloé@exämple.org" in exported


def test_reimport_does_not_resubscribe_the_unsubscribed(session: Session) -> None:
    lst = create_list(session, slug="l", name="L")
    sub = add_subscriber(session, lst.id, "ada@example.org", "Ada")
    sub.status = "unsubscribed"
    session.flush()
    result = import_csv(session, lst.id, io.StringIO("email\nada@example.org\n"))
    assert (result.added, result.updated, result.unchanged) == (0, 0, 1)
    assert session.scalar(select(Subscription.status)) == "unsubscribed"


def test_add_refuses_an_unknown_status_and_cleans_the_name(session: Session) -> None:
    lst = create_list(session, slug="l", name="L")
    with pytest.raises(DigestError, match="status"):
        add_subscriber(session, lst.id, "ada@example.org", status="vip")
    sub = add_subscriber(session, lst.id, "ada@example.org", "  Ada\n Lovelace" + " x" * 150)
    # The same rule as sign-up's: one line, capped to the column's 200 characters.
    assert sub.subscriber.name == ("Ada Lovelace" + " x" * 150)[:200]


def test_header_without_email_column_is_refused(session: Session) -> None:
    lst = create_list(session, slug="l", name="L")
    with pytest.raises(DigestError, match="email"):
        import_csv(session, lst.id, io.StringIO("mail,name\na@b.org,A\n"))


def test_bad_list_settings_are_refused(session: Session) -> None:
    with pytest.raises(DigestError, match="time zone"):
        create_list(session, slug="x", name="X", timezone="Mars/Olympus")
    with pytest.raises(DigestError, match="cron"):
        create_list(session, slug="x", name="X", schedule_cron="every day")
    with pytest.raises(DigestError, match="slug"):
        create_list(session, slug="Bad Slug", name="X")

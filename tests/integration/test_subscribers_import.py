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


def test_import_counts_merges_and_reports_alike_on_both_stores(session: Session) -> None:
    """PostgreSQL merges through COPY and a staging table, SQLite row chunk by chunk: the same
    file gives the same counts, events, names and reports."""
    from sqlalchemy import func, select

    from digest.models import Event, Subscriber, Subscription

    lst = create_list(session, slug="merge", name="Merge")
    add_subscriber(session, lst.id, "kept@example.org", name="Kept", status="pending")
    add_subscriber(session, lst.id, "gone@example.org", status="confirmed")
    gone = session.scalar(
        select(Subscription).join(Subscriber).where(Subscriber.email == "gone@example.org")
    )
    assert gone is not None
    gone.status = "unsubscribed"
    session.commit()
    events_before = session.scalar(select(func.count()).select_from(Event))
    text = (
        "email,name,city\n"
        "new@example.org,New Person,Lyon\n"  # 2: added
        "KEPT@example.org,Kept Renamed,\n"  # 3: pending -> confirmed, renamed
        "gone@example.org,,\n"  # 4: stays unsubscribed
        "not-an-address,,\n"  # 5: rejected
        "new@example.org,Again,\n"  # 6: a repeat of line 2
    )
    result = import_csv(session, lst.id, io.StringIO(text), "confirmed")
    session.commit()
    assert (result.added, result.updated, result.unchanged) == (1, 1, 1)
    assert [line for line, _ in result.errors] == [5, 6]
    assert "duplicate of an earlier row: new@example.org" in result.errors[1][1]
    names = {e: n for e, n in session.execute(select(Subscriber.email, Subscriber.name))}
    assert names["kept@example.org"] == "Kept Renamed" and names["new@example.org"] == "New Person"
    new = session.scalar(select(Subscriber).where(Subscriber.email == "new@example.org"))
    assert new is not None and new.attributes == {"city": "Lyon"}
    assert count_by_status(session, lst.id) == {"confirmed": 2, "unsubscribed": 1}
    assert session.scalar(select(func.count()).select_from(Event)) == (events_before or 0) + 1

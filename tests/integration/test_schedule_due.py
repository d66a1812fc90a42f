"""The scheduler records one scheduled issue per cron fire in the list's time zone, with its
checkpoint, so no fire is consumed without a record."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.issues.schedule import record_due_fires
from digest.models import MailingList, ScheduledIssue
from digest.subscribers.lists import create_list


def fires(session: Session) -> list[tuple[datetime, str]]:
    rows = session.execute(select(ScheduledIssue.fire_at, ScheduledIssue.state))
    return sorted((fire, state) for fire, state in rows)


def test_each_fire_is_recorded_once(session: Session) -> None:
    lst = create_list(session, slug="news", name="News", timezone="Europe/Paris")
    lst.created_at = datetime(2024, 1, 15)
    session.flush()
    # 1 Feb 09:00 Paris = 08:00 UTC: not yet at 07:59, due at 08:00, then not again.
    assert record_due_fires(session, datetime(2024, 2, 1, 7, 59)) == []
    (first,) = record_due_fires(session, datetime(2024, 2, 1, 8, 0))
    assert record_due_fires(session, datetime(2024, 2, 1, 8, 1)) == []
    assert record_due_fires(session, datetime(2024, 2, 20)) == []
    assert fires(session) == [(datetime(2024, 2, 1, 8, 0), "pending")]
    # Never settled, the February fire is superseded by March's: one issue will hold both.
    (second,) = record_due_fires(session, datetime(2024, 3, 1, 8, 30))
    assert second != first
    assert fires(session) == [
        (datetime(2024, 2, 1, 8, 0), "superseded"),
        (datetime(2024, 3, 1, 8, 0), "pending"),
    ]


def test_the_record_and_the_checkpoint_commit_together(session: Session) -> None:
    lst = create_list(session, slug="news", name="News")
    lst.created_at = datetime(2024, 1, 15)
    session.commit()
    assert record_due_fires(session, datetime(2024, 2, 1, 10, 0))
    session.rollback()  # the tick's transaction is lost: neither the record nor the checkpoint
    assert fires(session) == []
    assert session.scalar(select(MailingList.schedule_checked_at)) is None
    assert record_due_fires(session, datetime(2024, 2, 1, 10, 1))
    session.commit()
    assert fires(session) == [(datetime(2024, 2, 1, 9, 0), "pending")]

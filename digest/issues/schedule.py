"""Which lists are due for their next issue: a cron fire in the list's time zone since last look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import MailingList, utcnow


def last_fire(cron: str, tz: str, now: datetime) -> datetime:
    """The latest scheduled time at or before `now` (naive UTC in, naive UTC out)."""
    local_now = now.replace(tzinfo=UTC).astimezone(ZoneInfo(tz))
    # croniter's get_prev is strictly before its start: a second later includes `now` itself.
    fire: datetime = croniter(cron, local_now + timedelta(seconds=1)).get_prev(datetime)
    return fire.astimezone(UTC).replace(tzinfo=None)


def claim_due_lists(session: Session, now: datetime | None = None) -> list[int]:
    """Lists whose schedule fired since they were last checked; marks them checked.

    Rows are locked while they are looked at, so two beat ticks never both compose a list.
    """
    now = now or utcnow()
    due: list[int] = []
    lists = session.scalars(select(MailingList).with_for_update(skip_locked=True))
    for lst in lists:
        checked = lst.schedule_checked_at or lst.created_at
        if last_fire(lst.schedule_cron, lst.timezone, now) > checked:
            due.append(lst.id)
        lst.schedule_checked_at = now
    session.flush()
    return due

"""Which lists are due for their next issue: a cron fire in the list's time zone since last look.

Each fire is recorded as a scheduled issue in the transaction that moves the list's checkpoint
past it (scheduled.py takes it from there), so no fire is consumed without a record.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.models import MailingList, ScheduledIssue, ScheduledState, utcnow

OPEN_STATES = (ScheduledState.PENDING, ScheduledState.COLLECTING, ScheduledState.FAILED)


def last_fire(cron: str, tz: str, now: datetime) -> datetime:
    """The latest scheduled time at or before `now` (naive UTC in, naive UTC out)."""
    local_now = now.replace(tzinfo=UTC).astimezone(ZoneInfo(tz))
    # croniter's get_prev is strictly before its start: a second later includes `now` itself.
    fire: datetime = croniter(cron, local_now + timedelta(seconds=1)).get_prev(datetime)
    return fire.astimezone(UTC).replace(tzinfo=None)


def record_fire(session: Session, list_id: int, fire_at: datetime, now: datetime) -> int | None:
    """Record the list's scheduled issue for `fire_at`; the new record's id, or None if the
    fire was recorded already. Older records of the list still open are superseded: the new
    issue starts from the list's previous issue, so it holds what theirs would have."""
    # A write first: on SQLite it opens the transaction the savepoint below nests in.
    session.execute(
        update(ScheduledIssue)
        .where(
            ScheduledIssue.list_id == list_id,
            ScheduledIssue.fire_at < fire_at,
            ScheduledIssue.state.in_(OPEN_STATES),
        )
        .values(state=ScheduledState.SUPERSEDED, settled_at=now, lease_token=None)
        .execution_options(synchronize_session=False)
    )
    try:
        with session.begin_nested():
            record = ScheduledIssue(list_id=list_id, fire_at=fire_at, state=ScheduledState.PENDING)
            session.add(record)
    except IntegrityError:  # (list, fire) is unique: another tick recorded it
        return None
    return record.id


def record_due_fires(session: Session, now: datetime | None = None) -> list[int]:
    """Record a scheduled issue for each list whose schedule fired since it was last checked,
    and move the checkpoints, in the caller's transaction; the new records' ids.

    The lists are locked while they are looked at (others skipped), so two beat ticks never
    both record a fire; the unique (list, fire) would refuse the second anyway. Fires missed
    while nothing ran (beat stopped for months) make one record, the latest: its issue holds
    everything since the list's previous one."""
    now = now or utcnow()
    recorded: list[int] = []
    lists = session.scalars(select(MailingList).with_for_update(skip_locked=True)).all()
    for lst in lists:
        checked = lst.schedule_checked_at or lst.created_at
        fire = last_fire(lst.schedule_cron, lst.timezone, now)
        lst.schedule_checked_at = now
        if fire > checked and (record_id := record_fire(session, lst.id, fire, now)):
            recorded.append(record_id)
    session.flush()
    return recorded

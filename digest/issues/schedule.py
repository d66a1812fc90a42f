"""Which lists are due for their next issue: a cron fire in the list's time zone since last look;
and an approved issue's send scheduled at a time of the list's time zone (`schedule_send`).

Each fire is recorded as a scheduled issue in the transaction that moves the list's checkpoint
past it (scheduled.py takes it from there), so no fire is consumed without a record.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.errors import DigestError
from digest.issues.lifecycle import get_issue
from digest.models import Issue, IssueStatus, MailingList, ScheduledIssue, ScheduledState, utcnow

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


# --- An approved issue's send, at a time an editor chose in the list's time zone ------------

# How far ahead a send may be scheduled: a year covers every real plan; beyond is a typo.
SEND_AHEAD_MAX = timedelta(days=366)


_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?")


def parse_local_time(text: str) -> datetime:
    """A wall-clock time as a form's datetime-local field sends it ("2026-03-29T09:30"),
    naive; no offset: the list's time zone says where."""
    text = text.strip()
    if not _LOCAL.fullmatch(text):
        raise DigestError("give the date and time as YYYY-MM-DD HH:MM, in the list's time zone")
    try:
        return datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        raise DigestError(f"{text} is not a date and time") from None


def local_to_utc(local: datetime, tz: str) -> datetime:
    """A wall-clock time of `tz` (naive) as naive UTC. A time the clocks skip (spring forward)
    or show twice (fall back) is refused with what to choose instead: guessing would send an
    hour early or late."""
    zone = ZoneInfo(tz)
    local = local.replace(tzinfo=None, microsecond=0)
    try:
        first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
        second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    except (OverflowError, ValueError):
        raise DigestError(f"{local:%Y-%m-%d %H:%M} cannot be scheduled") from None
    if first != second:
        shown = f"{local:%Y-%m-%d %H:%M}"
        earlier, later = sorted((first, second))
        if first.astimezone(zone).replace(tzinfo=None) != local:
            raise DigestError(
                f"{shown} does not exist in {tz}: the clocks go forward then "
                f"({earlier.astimezone(zone):%Z} to {later.astimezone(zone):%Z}); choose a time "
                f"after the change, such as {later.astimezone(zone):%H:%M}, or before it"
            )
        raise DigestError(
            f"{shown} happens twice in {tz}: the clocks go back then "
            f"({earlier.astimezone(zone):%Z} and {later.astimezone(zone):%Z}); choose a time "
            "outside the repeated hour"
        )
    return first.replace(tzinfo=None)


def in_zone(value: datetime | None, tz: str) -> str:
    """A stored naive UTC time as the list's wall clock, with its zone's abbreviation."""
    if value is None:
        return "—"
    local = value.replace(tzinfo=UTC).astimezone(ZoneInfo(tz))
    return f"{local:%Y-%m-%d %H:%M} {local:%Z}".rstrip()


def schedule_send(
    session: Session, issue_id: int, local: datetime, now: datetime | None = None
) -> Issue:
    """Have an approved issue sent at `local`, a wall-clock time in its list's time zone;
    refused in the past or more than a year ahead. Scheduling again moves it."""
    issue = get_issue(session, issue_id, for_update=True)
    if issue.status != IssueStatus.APPROVED:
        raise DigestError(
            f"issue {issue_id} is {issue.status}; only an approved issue can be scheduled"
        )
    tz = issue.mailing_list.timezone
    at = local_to_utc(local, tz)
    now = now or utcnow()
    if at <= now:
        raise DigestError(
            f"{in_zone(at, tz)} ({tz}) has passed; choose a time in the future "
            f"(now it is {in_zone(now, tz)} there)"
        )
    if at - now > SEND_AHEAD_MAX:
        raise DigestError("a send can be scheduled up to a year ahead")
    issue.send_at = at
    session.flush()
    return issue


def unschedule_send(session: Session, issue_id: int) -> Issue:
    """Take back an approved issue's scheduled send; it stays approved, to send by hand."""
    issue = get_issue(session, issue_id, for_update=True)
    if issue.status != IssueStatus.APPROVED or issue.send_at is None:
        raise DigestError(f"issue {issue_id} has no scheduled send")
    issue.send_at = None
    session.flush()
    return issue


def due_sends(session: Session, now: datetime) -> list[int]:
    """Approved issues whose scheduled send has come, oldest first; locked on PostgreSQL
    (others skipped), so two due checks never hand one over twice."""
    query = (
        select(Issue.id)
        .where(Issue.status == IssueStatus.APPROVED, Issue.send_at <= now)
        .order_by(Issue.send_at, Issue.id)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))

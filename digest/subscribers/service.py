"""Subscribers and subscriptions: add one, import and export CSV, list."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import IO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.errors import DigestError
from digest.models import (
    STOPPED,
    Event,
    EventKind,
    SignupRequest,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from digest.subscribers.actions import clean_name
from digest.subscribers.addresses import display_email, normalise_email
from digest.subscribers.bulk_import import merge_rows
from digest.subscribers.export import neutralise, unneutralise
from digest.subscribers.suppression import erased_key, erased_keys, is_erased

ERASED = "erased at the person's request: never subscribed again by an admin or an import"

# An import never brings back someone who left or whose mail bounced.
STICKY = frozenset(STOPPED)
CHUNK = 1000


@dataclass
class ImportResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (CSV line, message)
    asked: int = 0  # new subscriptions sent a confirmation mail


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    email: str
    name: str
    attributes: dict[str, str]


def _check_status(status: str) -> SubscriptionStatus:
    try:
        return SubscriptionStatus(status)
    except ValueError:
        words = ", ".join(s.value for s in SubscriptionStatus)
        raise DigestError(f"status must be one of {words}") from None


def add_subscriber(
    session: Session,
    list_id: int,
    email: str,
    name: str = "",
    status: str = SubscriptionStatus.CONFIRMED,
    *,
    confirm_by_mail: bool = False,
) -> Subscription:
    """Subscribe one address (an admin's action); an existing subscription is updated as an
    import would (a stopped one stays stopped). With `confirm_by_mail`, a new subscription
    is asked to confirm by mail. An erased address is refused."""
    checked = _check_status(status)
    address = normalise_email(email)
    if is_erased(session, address):
        raise DigestError(f"{ERASED} ({address})")
    row = _Row(0, address, clean_name(name), {})
    _upsert(session, list_id, [row], checked, ImportResult(), confirm_by_mail=confirm_by_mail)
    sub = session.scalar(
        select(Subscription)
        .join(Subscriber)
        .where(Subscription.list_id == list_id, Subscriber.email == address)
    )
    assert sub is not None
    return sub


def import_csv(
    session: Session,
    list_id: int,
    stream: IO[str],
    status: str = SubscriptionStatus.CONFIRMED,
    *,
    confirm_by_mail: bool = False,
) -> ImportResult:
    """Import rows with an `email` column (and optional `name`, other columns as attributes).

    A malformed row is reported with its line number and skipped; the rest are imported.
    With `confirm_by_mail`, each new subscription is asked to confirm, by the mail a sign-up
    gets (a sign-up request per row, sent by the confirmations sender).
    """
    checked = _check_status(status)
    reader = csv.DictReader(stream)
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "email" not in fields:
        raise DigestError("the CSV needs a header row with an 'email' column")
    reader.fieldnames = fields
    total = ImportResult()
    erased = erased_keys(session)
    if session.get_bind().dialect.name == "postgresql":
        # Streamed: COPY into a staging table, then one set-based merge (flat memory).
        valid = _rows(reader, total, erased, dedupe=False)
        rows = ((r.line, r.email, r.name, r.attributes) for r in valid)
        merged = merge_rows(session, list_id, rows, checked, confirm_by_mail=confirm_by_mail)
        total.added, total.updated, total.unchanged = merged.added, merged.updated, merged.unchanged
        total.asked = merged.asked
        total.errors += [
            (line, f"duplicate of an earlier row: {e}") for line, e in merged.duplicates
        ]
    else:
        for chunk in _chunks(_rows(reader, total, erased), CHUNK):
            _upsert(session, list_id, chunk, checked, total, confirm_by_mail=confirm_by_mail)
    total.errors.sort()
    return total


def import_rows(
    session: Session, list_id: int, stream: IO[str], *, consent_recorded: bool
) -> ImportResult:
    """The import an admin runs (upload or CLI): rows are confirmed only when the uploader
    says each one's consent was recorded; otherwise they are pending and each new one gets a
    confirmation mail."""
    if consent_recorded:
        return import_csv(session, list_id, stream, SubscriptionStatus.CONFIRMED)
    return import_csv(session, list_id, stream, SubscriptionStatus.PENDING, confirm_by_mail=True)


def _rows(
    reader: csv.DictReader[str],
    result: ImportResult,
    erased: AbstractSet[str] = frozenset(),
    *,
    dedupe: bool = True,
) -> Iterator[_Row]:
    """The valid rows; each bad one is reported with its line. With `dedupe`, a repeated
    address too (the COPY import finds those in the staging table instead of in memory)."""
    seen: set[str] = set()
    last_line = reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a cell over the csv module's size limit, and the like
            # The reader does not count a line it failed on: the row starts after the last.
            last_line = max(reader.line_num, last_line + 1)
            result.errors.append((last_line, f"unreadable row: {exc}"))
            continue
        line = last_line = reader.line_num
        if None in record:  # more cells than header columns
            result.errors.append((line, "more cells than the header has columns"))
            continue
        raw = unneutralise((record.get("email") or "").strip())
        if not raw:
            result.errors.append((line, "empty email"))
            continue
        try:
            email = normalise_email(raw)
        except DigestError as exc:
            result.errors.append((line, str(exc)))
            continue
        if erased and erased_key(email) in erased:
            result.errors.append((line, "erased at the person's request: not imported"))
            continue
        if dedupe:
            if email in seen:
                result.errors.append((line, f"duplicate of an earlier row: {email}"))
                continue
            seen.add(email)
        attrs = {k: (v or "").strip() for k, v in record.items() if k not in ("email", "name")}
        yield _Row(line, email, clean_name(record.get("name") or ""), attrs)


def _chunks(rows: Iterable[_Row], size: int) -> Iterator[list[_Row]]:
    chunk: list[_Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _upsert(
    session: Session,
    list_id: int,
    rows: list[_Row],
    status: SubscriptionStatus,
    result: ImportResult,
    *,
    confirm_by_mail: bool = False,
) -> None:
    """Add or update one chunk of rows, counting into `result`."""
    emails = [r.email for r in rows]
    existing = {
        s.email: s for s in session.scalars(select(Subscriber).where(Subscriber.email.in_(emails)))
    }
    new = [
        Subscriber(email=r.email, name=r.name, attributes=r.attributes)
        for r in rows
        if r.email not in existing
    ]
    session.add_all(new)
    session.flush()
    by_email = existing | {s.email: s for s in new}
    for r in rows:
        sub = existing.get(r.email)
        if sub is not None and r.name and sub.name != r.name:
            sub.name = r.name
    subs = {
        s.subscriber_id: s
        for s in session.scalars(
            select(Subscription).where(
                Subscription.list_id == list_id,
                Subscription.subscriber_id.in_([s.id for s in by_email.values()]),
            )
        )
    }
    now = utcnow()
    for r in rows:
        subscriber = by_email[r.email]
        current = subs.get(subscriber.id)
        if current is None:
            session.add(
                Subscription(
                    list_id=list_id,
                    subscriber_id=subscriber.id,
                    status=status,
                    confirmed_at=now if status == SubscriptionStatus.CONFIRMED else None,
                )
            )
            session.add(
                Event(
                    kind=EventKind.SUBSCRIBED,
                    subscriber_id=subscriber.id,
                    list_id=list_id,
                    detail={"via": "import" if r.line else "admin", "status": status},
                )
            )
            result.added += 1
            if confirm_by_mail:
                session.add(
                    SignupRequest(
                        list_id=list_id,
                        email=r.email,
                        name=subscriber.name,
                        detail="import",
                        next_attempt_at=now,
                    )
                )
                result.asked += 1
        elif current.status in STICKY or current.status == status:
            result.unchanged += 1
        else:
            current.status = status
            if status == SubscriptionStatus.CONFIRMED:
                current.confirmed_at = now
            result.updated += 1
    session.flush()


def export_csv(session: Session, list_id: int, out: IO[str]) -> int:
    writer = csv.writer(out)
    writer.writerow(["email", "name", "status", "subscribed_at"])
    count = 0
    rows = session.execute(
        select(Subscriber.email, Subscriber.name, Subscription.status, Subscription.created_at)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(Subscription.list_id == list_id)
        .order_by(Subscriber.id)
        .execution_options(yield_per=5000)
    )
    for email, name, status, created in rows:
        # The form people read; importing it again gives the same stored address.
        # Cells a spreadsheet would run are neutralised; the import reads them back.
        shown = [neutralise(display_email(email)), neutralise(name)]
        writer.writerow([*shown, status, created.isoformat(timespec="seconds")])
        count += 1
    return count


def count_by_status(session: Session, list_id: int) -> dict[SubscriptionStatus, int]:
    rows = session.execute(
        select(Subscription.status, func.count())
        .where(Subscription.list_id == list_id)
        .group_by(Subscription.status)
    )
    return {status: n for status, n in rows}

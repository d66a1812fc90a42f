"""A list's (or a search's) subscribers as CSV or JSON, streamed a chunk at a time.

One query read through a server-side cursor (`yield_per`: psycopg's named cursor on
PostgreSQL), each chunk of rows turned into text and handed on before the next is read,
so memory stays flat at a million rows. The caller owns the session and keeps it open for
as long as the chunks are read (a web response opens its own).

CSV cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a
carriage return) are neutralised with a leading apostrophe (OWASP's "CSV injection"): a
name is whatever someone typed into the sign-up form.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from digest.models import Subscriber, Subscription, SubscriptionStatus, Suppression
from digest.subscribers.addresses import display_email
from digest.subscribers.search import Suppressed, text_matches

CHUNK = 2000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class Format(StrEnum):
    CSV = "csv"
    JSON = "json"


MEDIA_TYPES = {Format.CSV: "text/csv; charset=utf-8", Format.JSON: "application/json"}


@dataclass(frozen=True, slots=True)
class Selection:
    """Whom to export: a list's subscribers (with their status there), or everyone the
    search's filters find."""

    list_id: int | None = None
    status: SubscriptionStatus | None = None
    text: str = ""
    suppressed: Suppressed = Suppressed.ANY


def neutralise(cell: str) -> str:
    """A cell a spreadsheet shows as text, never runs."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def unneutralise(cell: str) -> str:
    """What `neutralise` was given (an import reads an exported address back)."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def _query(selection: Selection) -> Select[Any]:
    supp = exists().where(Suppression.email == Subscriber.email)
    columns: list[Any] = [
        Subscriber.id,
        Subscriber.email,
        Subscriber.name,
        Subscriber.language,
        Subscriber.timezone,
        Subscriber.created_at,
        supp.label("suppressed"),
    ]
    if selection.list_id is not None:
        columns += [Subscription.status, Subscription.confirmed_at, Subscription.unsubscribed_at]
    stmt = select(*columns)
    if selection.list_id is not None:
        stmt = stmt.join(Subscription, Subscription.subscriber_id == Subscriber.id).where(
            Subscription.list_id == selection.list_id
        )
        if selection.status is not None:
            stmt = stmt.where(Subscription.status == selection.status)
    elif selection.status is not None:
        stmt = stmt.where(
            exists().where(
                Subscription.subscriber_id == Subscriber.id,
                Subscription.status == selection.status,
            )
        )
    if text := selection.text.strip():
        stmt = stmt.where(text_matches(text))
    if selection.suppressed == Suppressed.YES:
        stmt = stmt.where(supp)
    elif selection.suppressed == Suppressed.NO:
        stmt = stmt.where(~supp)
    return stmt.order_by(Subscriber.id)


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") + "Z" if value else ""


def records(session: Session, selection: Selection) -> Iterator[dict[str, Any]]:
    """One dict per subscriber, read through a server-side cursor."""
    listed = selection.list_id is not None
    result = session.execute(_query(selection).execution_options(yield_per=CHUNK))
    for row in result:
        record: dict[str, Any] = {
            "id": row.id,
            "email": display_email(row.email),
            "name": row.name,
            "language": row.language or "",
            "timezone": row.timezone or "",
            "created_at": _iso(row.created_at),
            "suppressed": bool(row.suppressed),
        }
        if listed:
            record["status"] = str(row.status)
            record["confirmed_at"] = _iso(row.confirmed_at)
            record["unsubscribed_at"] = _iso(row.unsubscribed_at)
        yield record


def fields(selection: Selection) -> list[str]:
    base = ["id", "email", "name", "language", "timezone", "created_at", "suppressed"]
    return base + (["status", "confirmed_at", "unsubscribed_at"] if selection.list_id else [])


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return neutralise(value) if isinstance(value, str) else value


def csv_chunks(session: Session, selection: Selection) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(fields(selection))
    for n, record in enumerate(records(session, selection), 1):
        writer.writerow([_cell(v) for v in record.values()])
        if n % CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_chunks(session: Session, selection: Selection) -> Iterator[str]:
    """A JSON array, one object a line."""
    parts = ["["]
    first = True
    for n, record in enumerate(records(session, selection), 1):
        parts.append(("\n" if first else ",\n") + json.dumps(record, ensure_ascii=False))
        first = False
        if n % CHUNK == 0:
            yield "".join(parts)
            parts = []
    parts.append("\n]\n")
    yield "".join(parts)


def chunks(session: Session, selection: Selection, fmt: Format) -> Iterator[str]:
    return csv_chunks(session, selection) if fmt == Format.CSV else json_chunks(session, selection)

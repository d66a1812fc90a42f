"""A CSV import on PostgreSQL at any size: the valid rows are streamed with COPY into a
staging table, then merged in a few set-based statements (no lookup per row, memory flat
whatever the file's size). benchmarks/subscribers_import.py measures it.

The rules are the row-by-row import's (`digest.subscribers.service`): a new address becomes a
subscriber; a non-empty name replaces the stored one; a new subscription gets the import's
status and a `subscribed` event; an existing one takes the status unless it stopped
(unsubscribed, bounced, complained: an import never brings those back); a repeated address is
reported at every line after its first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from digest.models import STOPPED, EventKind, SubscriptionStatus, utcnow

STAGING = "digest_import_rows"


@dataclass
class Merged:
    rows: int = 0
    added: int = 0
    updated: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)  # (line, email)
    asked: int = 0  # confirmations queued

    @property
    def unchanged(self) -> int:
        return self.rows - self.added - self.updated


def merge_rows(
    session: Session,
    list_id: int,
    rows: Iterable[tuple[int, str, str, dict[str, str]]],
    status: SubscriptionStatus,
    *,
    confirm_by_mail: bool = False,
) -> Merged:
    """Stream (line, email, name, attributes) rows in and merge them into the list; with
    `confirm_by_mail`, each new subscription gets a sign-up request, so the confirmation is
    mailed as for a sign-up (`digest.delivery.confirmations`)."""
    raw: Any = session.connection().connection.driver_connection  # psycopg's connection
    merged = Merged()
    now = utcnow()
    params = {
        "list": list_id,
        "status": status.value,
        "now": now,
        "confirmed": now if status == SubscriptionStatus.CONFIRMED else None,
        "stopped": [s.value for s in STOPPED],
        "event": EventKind.SUBSCRIBED.value,
        "detail": json.dumps({"via": "import", "status": status.value}),
        "ask": confirm_by_mail,
    }
    with raw.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {STAGING}")
        cur.execute(
            f"CREATE TEMP TABLE {STAGING} (line bigint, email text, name text, attributes text)"
            " ON COMMIT DROP"
        )
        with cur.copy(f"COPY {STAGING} (line, email, name, attributes) FROM STDIN") as copy:
            for line, email, name, attributes in rows:
                copy.write_row((line, email, name, json.dumps(attributes) if attributes else "{}"))
                merged.rows += 1
        # A repeated address: the first line counts, the others are reported.
        cur.execute(
            f"DELETE FROM {STAGING} WHERE ctid IN (SELECT ctid FROM (SELECT ctid, row_number()"
            f" OVER (PARTITION BY email ORDER BY line) AS n FROM {STAGING}) AS r WHERE n > 1)"
            " RETURNING line, email"
        )
        merged.duplicates = [(int(line), str(email)) for line, email in cur.fetchall()]
        merged.rows -= len(merged.duplicates)
        cur.execute(f"ANALYZE {STAGING}")
        cur.execute(
            f"INSERT INTO subscribers (email, name, attributes, created_at)"
            f" SELECT email, name, attributes::json, %(now)s FROM {STAGING} ORDER BY email"
            " ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name"
            " WHERE EXCLUDED.name <> '' AND subscribers.name <> EXCLUDED.name",
            params,
        )
        cur.execute(
            f"UPDATE subscriptions AS t SET status = %(status)s,"
            " confirmed_at = COALESCE(%(confirmed)s, t.confirmed_at)"
            f" FROM {STAGING} AS r JOIN subscribers AS s ON s.email = r.email"
            " WHERE t.list_id = %(list)s AND t.subscriber_id = s.id"
            " AND t.status <> %(status)s AND NOT (t.status = ANY(%(stopped)s))",
            params,
        )
        merged.updated = cur.rowcount
        cur.execute(
            "WITH added AS ("
            " INSERT INTO subscriptions (list_id, subscriber_id, status, preferences, created_at,"
            " confirmed_at)"
            " SELECT %(list)s, s.id, %(status)s, '{}', %(now)s, %(confirmed)s"
            f" FROM {STAGING} AS r JOIN subscribers AS s ON s.email = r.email"
            " ON CONFLICT (list_id, subscriber_id) DO NOTHING RETURNING subscriber_id),"
            " logged AS (INSERT INTO events (kind, subscriber_id, list_id, detail, created_at)"
            " SELECT %(event)s, subscriber_id, %(list)s, %(detail)s::json, %(now)s FROM added"
            " RETURNING 1),"
            " asked AS (INSERT INTO signup_requests (list_id, email, name, bot, created_at,"
            " detail, attempts, next_attempt_at)"
            " SELECT %(list)s, s.email, s.name, false, %(now)s, 'import', 0, %(now)s"
            " FROM added JOIN subscribers AS s ON s.id = added.subscriber_id"
            " WHERE %(ask)s RETURNING 1)"
            " SELECT (SELECT count(*) FROM logged), (SELECT count(*) FROM asked)",
            params,
        )
        added, asked = cur.fetchone()
        merged.added, merged.asked = int(added), int(asked)
        cur.execute(f"DROP TABLE {STAGING}")
    session.expire_all()  # rows changed under the ORM's feet
    return merged

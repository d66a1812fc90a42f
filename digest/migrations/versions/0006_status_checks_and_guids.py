"""status CHECK constraints; one spelling of an item's title-and-date guid

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09 09:00:00

Every column that holds one of a few words (statuses, kinds, reasons) gets a CHECK constraint
with the words of its StrEnum in digest.models, as they are at this revision. On PostgreSQL
each is added NOT VALID and then validated, so the table is not locked against writes while
its rows are checked.

Items of listing pages with neither an id nor a usable URL had a guid digesting
"title\\n2024-02-21 09:00:00+00:00"; feeds digest "title\\n2024-02-21T09:00:00+00:00", and now
both do (digest.sources.guids). Stored guids of the first spelling are rewritten, so the next
collect finds those items instead of storing them again. The digests are spelled out here,
not imported: a migration must not change when the code does.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, column, constraint name as the models' naming convention makes it, words)
CHECKS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("sources", "kind", "ck_sources_kind", ("feed", "html", "auto", "manual")),
    ("lists", "grouping", "ck_lists_grouping", ("month", "source", "none")),
    (
        "subscriptions",
        "status",
        "ck_subscriptions_status",
        ("pending", "confirmed", "unsubscribed", "bounced", "complained"),
    ),
    (
        "issues",
        "status",
        "ck_issues_status",
        ("draft", "approved", "sending", "paused", "sent", "cancelled"),
    ),
    (
        "deliveries",
        "status",
        "ck_deliveries_status",
        ("pending", "sending", "sent", "failed", "skipped"),
    ),
    (
        "suppressions",
        "reason",
        "ck_suppressions_reason",
        ("bounce", "complaint", "unsubscribe", "manual"),
    ),
    (
        "events",
        "kind",
        "ck_events_kind",
        (
            "subscribed",
            "signup",
            "confirmed",
            "unsubscribed",
            "resubscribed",
            "preferences_updated",
            "delivery_failed",
            "bounced",
            "complained",
            "soft_bounce",
        ),
    ),
    (
        "signup_requests",
        "outcome",
        "ck_signup_requests_outcome",
        ("sent", "failed", "throttled", "suppressed", "subscribed", "bot"),
    ),
    (
        "scheduled_issues",
        "state",
        "ck_scheduled_issues_state",
        ("pending", "collecting", "composed", "empty", "failed", "superseded"),
    ),
)


def _condition(column: str, words: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{w}'" for w in words)
    return f"{column} IN ({listed})"


def _digest(title: str, stamp: str) -> str:
    return "sha1:" + hashlib.sha1(f"{title}\n{stamp}".encode()).hexdigest()


def _as_datetime(value: object) -> datetime:
    # SQLite hands back the stored text when read through a plain SELECT.
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def rewrite_guids(connection: sa.Connection) -> int:
    """Listing guids of the old spelling, rewritten to the one spelling; returns how many.
    A row whose new guid its source already has (read both ways) is left as it is."""
    items = sa.table(
        "items",
        sa.column("id", sa.BigInteger),
        sa.column("source_id", sa.Integer),
        sa.column("guid", sa.Text),
        sa.column("title", sa.Text),
        sa.column("published_at", sa.DateTime),
    )
    rows = connection.execute(
        sa.select(items.c.id, items.c.source_id, items.c.guid, items.c.title, items.c.published_at)
        .where(items.c.guid.like("sha1:%"), items.c.published_at.is_not(None))
        .order_by(items.c.id)
    ).all()
    changed = 0
    for item_id, source_id, guid, title, published_at in rows:
        published = _as_datetime(published_at).replace(tzinfo=UTC)  # stored as naive UTC
        if guid != _digest(title, str(published)):
            continue  # a feed's item, or the one spelling already
        new = _digest(title, published.isoformat())
        taken = connection.scalar(
            sa.select(items.c.id).where(items.c.source_id == source_id, items.c.guid == new)
        )
        if taken is None:
            connection.execute(items.update().where(items.c.id == item_id).values(guid=new))
            changed += 1
    return changed


def upgrade() -> None:
    rewrite_guids(op.get_bind())
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, column, name, words in CHECKS:
        if postgres:
            op.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {name} "
                f"CHECK ({_condition(column, words)}) NOT VALID"
            )
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")
        else:
            with op.batch_alter_table(table) as batch_op:
                batch_op.create_check_constraint(op.f(name), _condition(column, words))


def downgrade() -> None:
    # The guids stay in the one spelling: the code before this revision reads them as new
    # items at worst, and a listing page without links is rare.
    for table, _, name, _ in reversed(CHECKS):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(op.f(name), type_="check")

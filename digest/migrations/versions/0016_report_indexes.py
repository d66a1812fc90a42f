"""Indexes for the delivery report at a million recipients

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 09:00:00.000000

"Joined after it went out" reads a range of subscriptions by confirmed_at or created_at (both
OR-ed by bitmap) instead of every older subscription; "when the first copy went out" reads one
entry of a partial index on deliveries.sent_at instead of the issue's million rows (partial:
planning writes no sent_at, so it adds no entry to it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscriptions_list_confirmed", "subscriptions", ["list_id", "confirmed_at"])
    op.create_index("ix_subscriptions_list_created", "subscriptions", ["list_id", "created_at"])
    op.create_index(
        "ix_deliveries_sent_at",
        "deliveries",
        ["issue_id", "sent_at"],
        postgresql_where=sa.text("sent_at IS NOT NULL"),
        sqlite_where=sa.text("sent_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_sent_at", table_name="deliveries")
    op.drop_index("ix_subscriptions_list_created", table_name="subscriptions")
    op.drop_index("ix_subscriptions_list_confirmed", table_name="subscriptions")

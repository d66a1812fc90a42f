"""deliveries.next_attempt_at NOT NULL: the claim reads one range of its index

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-03 08:00:00.000000

Rows written before planning stamped every delivery's first attempt had none: those still
pending are due at once (as the claim's old `OR next_attempt_at IS NULL` had them), settled ones
take the moment they were due or sent.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    op.execute(
        sa.text(
            "UPDATE deliveries SET next_attempt_at = COALESCE(due_at, sent_at, :now)"
            " WHERE next_attempt_at IS NULL"
        ).bindparams(sa.bindparam("now", now, type_=sa.DateTime()))
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("next_attempt_at", existing_type=sa.DateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("next_attempt_at", existing_type=sa.DateTime(), nullable=True)

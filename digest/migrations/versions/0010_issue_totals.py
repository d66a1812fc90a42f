"""issue_totals: what retention removed, kept as per-issue counts

Revision ID: 0010
Revises: 0011
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issue_totals",
        sa.Column("issue_id", sa.BigInteger(), nullable=False),
        sa.Column("record", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("record IN ('delivery', 'event')", name="ck_issue_totals_record"),
        sa.PrimaryKeyConstraint("issue_id", "record", "outcome", name="pk_issue_totals"),
    )


def downgrade() -> None:
    op.drop_table("issue_totals")

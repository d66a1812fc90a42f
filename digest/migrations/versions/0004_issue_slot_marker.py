"""issue slot marker

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slot_marker", sa.String(length=48), nullable=True))
    # Issues rendered before markers were secret spelled their slots "[[digest:field]]".
    op.execute("UPDATE issues SET slot_marker = 'digest' WHERE html IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("slot_marker")

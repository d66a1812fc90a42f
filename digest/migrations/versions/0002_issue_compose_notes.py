"""issue compose notes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 05:24:01.410736
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        # Existing issues get an empty list.
        batch_op.add_column(
            sa.Column("compose_notes", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("compose_notes")

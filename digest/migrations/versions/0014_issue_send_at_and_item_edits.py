"""issues.send_at (a scheduled send); issue_items' own title and summary (an editor's edit)

Revision ID: 0014
Revises: 0009
Create Date: 2026-12-02 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("send_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_issues_send_at", ["send_at"])
    with op.batch_alter_table("issue_items") as batch:
        batch.add_column(sa.Column("title", sa.Text(), nullable=True))
        batch.add_column(sa.Column("summary_html", sa.Text(), nullable=True))
        batch.add_column(sa.Column("summary_text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issue_items") as batch:
        batch.drop_column("summary_text")
        batch.drop_column("summary_html")
        batch.drop_column("title")
    with op.batch_alter_table("issues") as batch:
        batch.drop_index("ix_issues_send_at")
        batch.drop_column("send_at")

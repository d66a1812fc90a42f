"""deliveries.subscriber_id indexed: a subscriber's page lists their deliveries, erasure
deletes them

Revision ID: 0012
Revises: 0014
Create Date: 2026-12-02 14:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_subscriber", "deliveries", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_subscriber", table_name="deliveries")

"""readers: language editions, topics, local send time, issue variants, due deliveries

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02 06:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("categories", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.add_column(sa.Column("editions", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("send_local_time", sa.String(length=5), nullable=True))
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("topic_ids", sa.String(length=200), nullable=False, server_default="")
        )
    with op.batch_alter_table("signup_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variant_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("due_at", sa.DateTime(), nullable=True))
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source_ids", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_topics_list_id_lists"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("list_id", "slug", name=op.f("uq_topics_list_id_slug")),
    )
    op.create_table(
        "issue_variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("topic_ids", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("item_ids", sa.JSON(), nullable=False),
        sa.Column("readers", sa.Integer(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("slot_marker", sa.String(length=48), nullable=True),
        sa.Column("render_warnings", sa.JSON(), nullable=False),
        sa.Column("message_template", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_variants_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_variants")),
        sa.UniqueConstraint(
            "issue_id",
            "language",
            "topic_ids",
            name=op.f("uq_issue_variants_issue_id_language_topic_ids"),
        ),
    )


def downgrade() -> None:
    op.drop_table("issue_variants")
    op.drop_table("topics")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("due_at")
        batch_op.drop_column("variant_id")
    with op.batch_alter_table("signup_requests", schema=None) as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("language")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("topic_ids")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("language")
    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.drop_column("send_local_time")
        batch_op.drop_column("editions")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("categories")

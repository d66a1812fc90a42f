"""delivery events (bounces, complaints, relay answers), paused domains, installation

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-02 06:30:00

What a recipient's system says about a delivery is recorded per delivery, subscriber and
issue, with the verdict the policy drew from it (digest.subscribers.classify); destination
domains that block us are paused rather than their readers suppressed; the installation
row (made on first use) holds the random part of this database's Message-IDs. The words are
spelled out here, as they are at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0008"
branch_labels = None
depends_on = None

VERDICTS = (
    "hard",
    "soft",
    "block",
    "ours",
    "delay",
    "complaint",
    "opt_out",
    "auth_failure",
    "auto_reply",
    "unsubscribe",
    "other",
)
ACTIONS = ("none", "suppressed", "unsubscribed", "domain_paused")
VIAS = ("relay", "inbound")


def _in(column: str, words: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(w) for w in words)})"


def upgrade() -> None:
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(_in("verdict", VERDICTS), name=op.f("ck_delivery_events_verdict")),
        sa.CheckConstraint(_in("action", ACTIONS), name=op.f("ck_delivery_events_action")),
        sa.CheckConstraint(_in("via", VIAS), name=op.f("ck_delivery_events_via")),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_delivery_events_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_delivery_events_subscriber_id_subscribers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_events")),
    )
    with op.batch_alter_table("delivery_events") as batch_op:
        batch_op.create_index(
            "ix_delivery_events_email", ["email", "verdict", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_delivery_events_domain", ["domain", "verdict", "created_at"], unique=False
        )
        batch_op.create_index(op.f("ix_delivery_events_issue_id"), ["issue_id"], unique=False)
        batch_op.create_index(
            op.f("ix_delivery_events_subscriber_id"), ["subscriber_id"], unique=False
        )
    op.create_table(
        "paused_domains",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("paused_until", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_paused_domains")),
    )
    op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id_part", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )


def downgrade() -> None:
    op.drop_table("installation")
    op.drop_table("paused_domains")
    with op.batch_alter_table("delivery_events") as batch_op:
        batch_op.drop_index(op.f("ix_delivery_events_subscriber_id"))
        batch_op.drop_index(op.f("ix_delivery_events_issue_id"))
        batch_op.drop_index("ix_delivery_events_domain")
        batch_op.drop_index("ix_delivery_events_email")
    op.drop_table("delivery_events")

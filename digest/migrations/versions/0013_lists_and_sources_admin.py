"""lists.opt_in, sources.enabled, source_fetches: what the admin's list and source pages edit

Revision ID: 0013
Revises: 0014
Create Date: 2026-12-02 14:00:00.000000

A list's opt-in mode (a public sign-up confirmed by a mailed link, or at once); a source an
admin disabled (never due); one row per fetch of a source, its history. The words are spelled
out here, as they are at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OPT_IN = ("double", "single")
OUTCOMES = ("new_items", "no_new_items", "not_modified", "error")


def _in(column: str, words: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(w) for w in words)})"


def upgrade() -> None:
    with op.batch_alter_table("lists") as batch:
        batch.add_column(
            sa.Column("opt_in", sa.String(length=16), nullable=False, server_default="double")
        )
        batch.create_check_constraint(op.f("ck_lists_opt_in"), _in("opt_in", OPT_IN))
    with op.batch_alter_table("sources") as batch:
        batch.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_table(
        "source_fetches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.Column("new", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("outcome", OUTCOMES), name=op.f("ck_source_fetches_outcome")),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_source_fetches_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_fetches")),
    )
    with op.batch_alter_table("source_fetches") as batch:
        batch.create_index("ix_source_fetches_source", ["source_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_table("source_fetches")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("enabled")
    with op.batch_alter_table("lists") as batch:
        batch.drop_constraint(op.f("ck_lists_opt_in"), type_="check")
        batch.drop_column("opt_in")

"""self submission: cases, their entries and batches (the self-submitted list kind is
the list purpose "self-submitted", a value of the existing column)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 07:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "self_submissions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "list_id", sa.Integer(), sa.ForeignKey("lists.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("case_key"),
    )
    op.create_table(
        "self_submission_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "submission_id",
            sa.Integer(),
            sa.ForeignKey("self_submissions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "entry_id",
            sa.Integer(),
            sa.ForeignKey("entries.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_self_submission_entries_submission_id", "self_submission_entries", ["submission_id"]
    )
    op.create_table(
        "self_submission_batches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "submission_id",
            sa.Integer(),
            sa.ForeignKey("self_submissions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("submitter", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_self_submission_batches_submitter_at", "self_submission_batches", ["submitter", "at"]
    )


def downgrade() -> None:
    op.drop_index("ix_self_submission_batches_submitter_at", "self_submission_batches")
    op.drop_table("self_submission_batches")
    op.drop_index("ix_self_submission_entries_submission_id", "self_submission_entries")
    op.drop_table("self_submission_entries")
    op.drop_table("self_submissions")

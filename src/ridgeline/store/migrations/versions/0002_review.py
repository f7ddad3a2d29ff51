"""review: reviewers, verdicts, review views, evidence blobs, tamper-evident log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 02:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION ridgeline_log_records_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'log_records is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "reviewers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("is_reviewer", sa.Boolean(), nullable=False),
        sa.Column("is_senior", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=True),
        sa.Column("break_after_minutes", sa.Integer(), nullable=True),
        sa.Column("break_minutes", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("classifications", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dwell_seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reviewer"], ["reviewers.name"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("verdicts", schema=None) as batch_op:
        batch_op.create_index("ux_verdicts_entry_reviewer", ["entry_id", "reviewer"], unique=True)
    op.create_table(
        "review_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unblurred", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reviewer"], ["reviewers.name"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("review_views", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_views_reviewer_started", ["reviewer", "started_at"], unique=False
        )
    op.create_table(
        "evidence_blobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("blob_uuid", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("blob_uuid"),
    )
    with op.batch_alter_table("evidence_blobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_blobs_entry_id"), ["entry_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_evidence_blobs_stored_at"), ["stored_at"], unique=False
        )
    op.create_table(
        "log_records",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash"),
    )
    with op.batch_alter_table("log_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_records_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_log_records_subject"), ["subject"], unique=False)

    # Append-only at the database level: an attacker has to drop these first.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER log_records_append_only BEFORE UPDATE OR DELETE ON log_records "
            "FOR EACH ROW EXECUTE FUNCTION ridgeline_log_records_append_only()"
        )
        op.execute(
            "CREATE TRIGGER log_records_no_truncate BEFORE TRUNCATE ON log_records "
            "FOR EACH STATEMENT EXECUTE FUNCTION ridgeline_log_records_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER log_records_no_update BEFORE UPDATE ON log_records "
            "BEGIN SELECT RAISE(ABORT, 'log_records is append-only: UPDATE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER log_records_no_delete BEFORE DELETE ON log_records "
            "BEGIN SELECT RAISE(ABORT, 'log_records is append-only: DELETE refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS log_records_no_truncate ON log_records")
        op.execute("DROP TRIGGER IF EXISTS log_records_append_only ON log_records")
        op.execute("DROP FUNCTION IF EXISTS ridgeline_log_records_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS log_records_no_update")
        op.execute("DROP TRIGGER IF EXISTS log_records_no_delete")
    op.drop_table("log_records")
    op.drop_table("evidence_blobs")
    op.drop_table("review_views")
    op.drop_table("verdicts")
    op.drop_table("reviewers")

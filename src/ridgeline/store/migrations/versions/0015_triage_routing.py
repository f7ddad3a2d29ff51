"""triage and routing: priorities, routing rules, availability, legal process, key agency

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 07:33:01.860816
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("state", sa.String(length=100), nullable=False),
        sa.Column("agency", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("country", "state", name="uq_routing_rules_place"),
    )
    op.create_table(
        "legal_process",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("agency", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=True),
        sa.Column("files", sa.JSON(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("entered_by", sa.String(length=200), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["report_id"], ["received_reports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("legal_process", schema=None) as batch_op:
        batch_op.create_index("ix_legal_process_report", ["report_id", "agency"], unique=False)

    op.create_table(
        "report_availability",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("agency", sa.String(length=200), nullable=False),
        sa.Column("why", sa.JSON(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("state", sa.String(length=100), nullable=True),
        sa.Column("made_by", sa.String(length=200), nullable=False),
        sa.Column("made_available_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["report_id"], ["received_reports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("report_id", "agency", name="uq_report_availability"),
    )
    with op.batch_alter_table("report_availability", schema=None) as batch_op:
        batch_op.create_index(
            "ix_report_availability_agency", ["agency", "report_id"], unique=False
        )

    op.create_table(
        "triage_priorities",
        sa.Column("report_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("computed_priority", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("rules", sa.String(length=500), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("overridden_by", sa.String(length=200), nullable=True),
        sa.Column("overridden_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["report_id"], ["received_reports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("report_id"),
    )
    with op.batch_alter_table("triage_priorities", schema=None) as batch_op:
        batch_op.create_index(
            "ix_triage_priorities_queue", ["priority", "received_at"], unique=False
        )

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agency", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("agency")

    with op.batch_alter_table("triage_priorities", schema=None) as batch_op:
        batch_op.drop_index("ix_triage_priorities_queue")

    op.drop_table("triage_priorities")
    with op.batch_alter_table("report_availability", schema=None) as batch_op:
        batch_op.drop_index("ix_report_availability_agency")

    op.drop_table("report_availability")
    with op.batch_alter_table("legal_process", schema=None) as batch_op:
        batch_op.drop_index("ix_legal_process_report")

    op.drop_table("legal_process")
    op.drop_table("routing_rules")

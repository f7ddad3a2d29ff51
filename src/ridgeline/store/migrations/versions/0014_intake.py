"""intake: received reports, their identifiers, cases, links, viral-file bundles

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 07:29:15.660349
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index("ix_case_events_case", ["case_id"], unique=False)

    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("merged_into", sa.Integer(), nullable=True),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "file_bundles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=400), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("file_bundles", schema=None) as batch_op:
        batch_op.create_index("ix_file_bundles_kind_value", ["kind", "value"], unique=True)

    op.create_table(
        "received_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_by", sa.String(length=200), nullable=True),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("incident_type", sa.String(length=80), nullable=True),
        sa.Column("incident_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reporter", sa.String(length=300), nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("received_reports", schema=None) as batch_op:
        batch_op.create_index("ix_received_reports_incident_type", ["incident_type"], unique=False)
        batch_op.create_index("ix_received_reports_received_at", ["received_at"], unique=False)
        batch_op.create_index("ix_received_reports_sha256", ["sha256"], unique=False)

    op.create_table(
        "case_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_a", sa.Integer(), nullable=False),
        sa.Column("report_b", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=400), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cut", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["report_a"], ["received_reports.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["report_b"], ["received_reports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_links", schema=None) as batch_op:
        batch_op.create_index("ix_case_links_kind_value", ["kind", "value"], unique=False)
        batch_op.create_index("ix_case_links_report_a", ["report_a"], unique=False)
        batch_op.create_index("ix_case_links_report_b", ["report_b"], unique=False)

    op.create_table(
        "case_reports",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.ForeignKeyConstraint(["report_id"], ["received_reports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("report_id"),
    )
    with op.batch_alter_table("case_reports", schema=None) as batch_op:
        batch_op.create_index("ix_case_reports_case", ["case_id"], unique=False)

    op.create_table(
        "file_bundle_reports",
        sa.Column("bundle_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["bundle_id"], ["file_bundles.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["report_id"], ["received_reports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("bundle_id", "report_id"),
    )
    with op.batch_alter_table("file_bundle_reports", schema=None) as batch_op:
        batch_op.create_index("ix_file_bundle_reports_report", ["report_id"], unique=False)

    op.create_table(
        "report_identifiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=400), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=True),
        sa.Column("device_type", sa.String(length=64), nullable=True),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("possible_proxy", sa.Boolean(), nullable=False),
        sa.Column("original", sa.String(length=400), nullable=True),
        sa.ForeignKeyConstraint(["report_id"], ["received_reports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("report_identifiers", schema=None) as batch_op:
        batch_op.create_index("ix_report_identifiers_kind_value", ["kind", "value"], unique=False)
        batch_op.create_index("ix_report_identifiers_report", ["report_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("report_identifiers", schema=None) as batch_op:
        batch_op.drop_index("ix_report_identifiers_report")
        batch_op.drop_index("ix_report_identifiers_kind_value")

    op.drop_table("report_identifiers")
    with op.batch_alter_table("file_bundle_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_file_bundle_reports_report")

    op.drop_table("file_bundle_reports")
    with op.batch_alter_table("case_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_case_reports_case")

    op.drop_table("case_reports")
    with op.batch_alter_table("case_links", schema=None) as batch_op:
        batch_op.drop_index("ix_case_links_report_b")
        batch_op.drop_index("ix_case_links_report_a")
        batch_op.drop_index("ix_case_links_kind_value")

    op.drop_table("case_links")
    with op.batch_alter_table("received_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_received_reports_sha256")
        batch_op.drop_index("ix_received_reports_received_at")
        batch_op.drop_index("ix_received_reports_incident_type")

    op.drop_table("received_reports")
    with op.batch_alter_table("file_bundles", schema=None) as batch_op:
        batch_op.drop_index("ix_file_bundles_kind_value")

    op.drop_table("file_bundles")
    op.drop_table("cases")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index("ix_case_events_case")

    op.drop_table("case_events")

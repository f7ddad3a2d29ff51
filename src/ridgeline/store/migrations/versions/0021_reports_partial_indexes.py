"""reports: the NCMEC report id and preservation indexes hold only filed reports
(a draft, which has neither, no longer writes two index pages on every `/v1/match`
report hit)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (("ix_cybertip_reports_ncmec_id", "ncmec_report_id"),
            ("ix_cybertip_reports_keep_until", "keep_until"))  # fmt: skip


def upgrade() -> None:
    for name, column in _INDEXES:
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(name, table_name="cybertip_reports")
        op.create_index(
            name, "cybertip_reports", [column], sqlite_where=where, postgresql_where=where
        )


def downgrade() -> None:
    for name, column in _INDEXES:
        op.drop_index(name, table_name="cybertip_reports")
        op.create_index(name, "cybertip_reports", [column])

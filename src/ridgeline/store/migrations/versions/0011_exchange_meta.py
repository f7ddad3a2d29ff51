"""exchange meta: series, victim identified, case numbers, member name on entries

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 05:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("series", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("victim_identified", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("case_numbers", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("origin_member_name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("origin_member_name")
        batch.drop_column("case_numbers")
        batch.drop_column("victim_identified")
        batch.drop_column("series")

"""ui users: the agency a law-enforcement user acts for (as api_keys.agency)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ui_users") as batch:
        batch.add_column(sa.Column("agency", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ui_users") as batch:
        batch.drop_column("agency")

"""exchange: entries by origin id (a streamed import looks up each part's re-sent
records by their origin id instead of reading every origin of the list)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = sa.text("origin_entry_id IS NOT NULL")


def upgrade() -> None:
    # Partial: a txt import's entries have no origin id and cost the index nothing.
    op.create_index(
        "ix_entries_origin",
        "entries",
        ["list_id", "origin_entry_id"],
        sqlite_where=_WHERE,
        postgresql_where=_WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_entries_origin", table_name="entries")

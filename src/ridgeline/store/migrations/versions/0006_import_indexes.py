"""import indexes: entry_signals.entry_id

A first import into a fresh PostgreSQL database checked for duplicates with a join of
entry_signals to entries; with no statistics yet and no index on entry_id the planner
chose a nested loop over every row the import had just inserted (issue 17 item 2:
10k md5 in 34-55 s, 20k over 7 minutes). The index makes the inner side an index
scan whatever the statistics say; it also serves the cascade on entry deletion.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_entry_signals_entry_id", "entry_signals", ["entry_id"])


def downgrade() -> None:
    op.drop_index("ix_entry_signals_entry_id", table_name="entry_signals")

"""victims packed: a record's own sightings in one packed row, the merged victims as
columns for the indicator, traded updates after the last merge, and record indexes on
victim_hashes and victim_merges

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 13:45:00
"""

from collections.abc import Sequence
from itertools import groupby

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "victim_sighting_packs",
        sa.Column(
            "record_id",
            sa.Integer(),
            sa.ForeignKey("victim_records.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("times", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "victim_columns",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "victim_traded_updates",
        sa.Column("merged_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("traded_since", sa.BigInteger(), nullable=False),
    )
    # replacing records deletes their hashes and merges: without these, PostgreSQL's
    # foreign-key check scans both tables once per deleted record
    op.create_index("ix_victim_hashes_record", "victim_hashes", ["record_id"])
    op.create_index("ix_victim_merges_a", "victim_merges", ["record_a"])
    op.create_index("ix_victim_merges_b", "victim_merges", ["record_b"])
    # a database's own sightings (source = the record's database) move into packs, in
    # the order they were stored; match sightings stay rows
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT s.id, s.record_id, s.seen_at FROM victim_sightings s "
            "JOIN victim_records r ON r.id = s.record_id AND s.source = r.database "
            "ORDER BY s.record_id, s.id"
        )
    ).all()
    packs = []
    for record_id, group in groupby(rows, key=lambda r: r[1]):
        times = np.array([int(r[2]) for r in group], dtype="<i8")
        packs.append({"record_id": int(record_id), "count": len(times), "times": times.tobytes()})
    if packs:
        table = sa.table(
            "victim_sighting_packs",
            sa.column("record_id", sa.Integer()),
            sa.column("count", sa.Integer()),
            sa.column("times", sa.LargeBinary()),
        )
        op.bulk_insert(table, packs)
        bind.execute(
            sa.text(
                "DELETE FROM victim_sightings WHERE id IN (SELECT s.id FROM victim_sightings s "
                "JOIN victim_records r ON r.id = s.record_id AND s.source = r.database)"
            )
        )


def downgrade() -> None:
    bind = op.get_bind()
    for record_id, times in bind.execute(
        sa.text("SELECT p.record_id, p.times FROM victim_sighting_packs p ORDER BY p.record_id")
    ).all():
        source = bind.execute(
            sa.text("SELECT database FROM victim_records WHERE id = :id"), {"id": record_id}
        ).scalar()
        values = np.frombuffer(times, dtype="<i8").tolist()
        if values:
            bind.execute(
                sa.text(
                    "INSERT INTO victim_sightings (record_id, seen_at, source) VALUES (:r, :t, :s)"
                ),
                [{"r": record_id, "t": t, "s": source} for t in values],
            )
    op.drop_index("ix_victim_merges_b", table_name="victim_merges")
    op.drop_index("ix_victim_merges_a", table_name="victim_merges")
    op.drop_index("ix_victim_hashes_record", table_name="victim_hashes")
    op.drop_table("victim_traded_updates")
    op.drop_table("victim_columns")
    op.drop_table("victim_sighting_packs")

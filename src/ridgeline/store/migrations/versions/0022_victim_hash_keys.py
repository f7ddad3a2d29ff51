"""victim hashes: a short integer key (`victim_hashes.key`, indexed) instead of an index
on the 64-character (signal, value) text; victim_records' (database, victim_key) as a
named unique index (a big import drops and rebuilds it by one sort)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 15:10:00
"""

import hashlib
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLAIN_HEX = re.compile(r"(?:[0-9a-f]{2}){1,32}")


def _key(value: str) -> int:
    """The same as `ridgeline.victims.feed.hash_key` (copied: a migration is frozen)."""
    if _PLAIN_HEX.fullmatch(value):
        raw = bytes.fromhex(value[:16]).ljust(8, b"\0")
    else:
        raw = hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(raw, "little", signed=True)


def _records(*constraints: sa.Constraint) -> sa.Table:
    """victim_records as 0005 made it (no migration since changed its columns), with
    `constraints` besides its primary key: batch mode copies it from this definition,
    not from reflection (which would keep the unnamed unique constraint)."""
    return sa.Table(
        "victim_records",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("database", sa.String(length=64), nullable=False),
        sa.Column("victim_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen_source", sa.String(length=64), nullable=False),
        sa.Column("identified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("identifying_agency", sa.String(length=200), nullable=True),
        sa.Column("age_band", sa.String(length=16), nullable=False),
        sa.Column("gender", sa.String(length=8), nullable=False),
        sa.Column("region", sa.String(length=8), nullable=False),
        sa.Column("merged_id", sa.Integer(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.Index("ix_victim_records_merged", "merged_id"),
        *constraints,
    )


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("victim_hashes") as batch:
        batch.add_column(sa.Column("key", sa.BigInteger(), nullable=False, server_default="0"))
    rows = bind.execute(sa.text("SELECT id, value FROM victim_hashes")).all()
    update = sa.text("UPDATE victim_hashes SET key = :k WHERE id = :i")
    for start in range(0, len(rows), 50_000):
        part = rows[start : start + 50_000]
        bind.execute(update, [{"k": _key(v), "i": i} for i, v in part])
    with op.batch_alter_table("victim_hashes") as batch:
        batch.alter_column("key", server_default=None)
        batch.drop_index("ix_victim_hashes_value")
        batch.create_index("ix_victim_hashes_key", ["key"])
    if bind.dialect.name == "postgresql":
        op.drop_constraint(
            "victim_records_database_victim_key_key", "victim_records", type_="unique"
        )
        op.create_index(
            "ux_victim_records_key", "victim_records", ["database", "victim_key"], unique=True
        )
        return
    # SQLite: the unnamed table constraint goes by copying the table (batch mode)
    with op.batch_alter_table("victim_records", recreate="always", copy_from=_records()):
        pass
    op.create_index(
        "ux_victim_records_key", "victim_records", ["database", "victim_key"], unique=True
    )


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index("ux_victim_records_key", table_name="victim_records")
    if bind.dialect.name == "postgresql":
        op.create_unique_constraint(
            "victim_records_database_victim_key_key", "victim_records", ["database", "victim_key"]
        )
    else:
        unique = sa.UniqueConstraint("database", "victim_key")  # unnamed, as 0005 made it
        with op.batch_alter_table("victim_records", recreate="always", copy_from=_records(unique)):
            pass
    with op.batch_alter_table("victim_hashes") as batch:
        batch.drop_index("ix_victim_hashes_key")
        batch.create_index("ix_victim_hashes_value", ["signal", "value"])
        batch.drop_column("key")

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
from typing import Any

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
    # a plain ADD COLUMN (no table copy); the default stays, as in the model
    op.add_column(
        "victim_hashes", sa.Column("key", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.drop_index("ix_victim_hashes_value", table_name="victim_hashes")
    if bind.dialect.name == "sqlite":  # one pass over the table, the key computed in place
        raw: Any = bind.connection.dbapi_connection
        raw.create_function("ridgeline_0022_key", 1, _key, deterministic=True)
        bind.exec_driver_sql("UPDATE victim_hashes SET key = ridgeline_0022_key(value)")
        raw.create_function("ridgeline_0022_key", 1, None)
    else:  # in id order, 50,000 rows at a time (memory stays level)
        select = sa.text(
            "SELECT id, value FROM victim_hashes WHERE id > :after ORDER BY id LIMIT 50000"
        )
        update = sa.text("UPDATE victim_hashes SET key = :k WHERE id = :i")
        after = 0
        while rows := bind.execute(select, {"after": after}).all():
            bind.execute(update, [{"k": _key(v), "i": i} for i, v in rows])
            after = rows[-1][0]
    op.create_index("ix_victim_hashes_key", "victim_hashes", ["key"])
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
    op.drop_index("ix_victim_hashes_key", table_name="victim_hashes")
    op.create_index("ix_victim_hashes_value", "victim_hashes", ["signal", "value"])
    with op.batch_alter_table("victim_hashes") as batch:
        batch.drop_column("key")

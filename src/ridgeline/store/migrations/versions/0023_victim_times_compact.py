"""victim records, merged victims and series: times as integer UTC microseconds
(BIGINT) instead of datetimes (26 characters of text each on SQLite); the records'
`status` (identified exactly when `identified_at` is set) and `first_seen_source`
(always the record's own database) go, being derived; the series' (database,
series_key) as a named unique index (a big import drops and rebuilds it by one sort)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 18:30:00
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EPOCH = dt.datetime(1970, 1, 1)
_TIMES = {
    "victim_records": ("first_seen", "identified_at", "imported_at"),
    "merged_victims": ("first_seen", "identified_at", "traded_since"),
    "victim_series": ("created_at",),
}
_NOT_NULL = {"first_seen", "imported_at", "created_at"}


def _series(created_at: sa.types.TypeEngine[Any], *constraints: sa.Constraint) -> sa.Table:
    """victim_series as 0005 made it, with `created_at` of the given type and
    `constraints`: batch mode copies it from this definition, not from reflection
    (which would keep the unnamed unique constraint)."""
    return sa.Table(
        "victim_series",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("database", sa.String(length=64), nullable=False),
        sa.Column("series_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", created_at, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        *constraints,
    )


def _micros(text: str | None) -> int | None:
    """SQLAlchemy's SQLite datetime text (naive UTC) as microseconds since the epoch."""
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


def _text(micros: int | None) -> str | None:
    if micros is None:
        return None
    return (_EPOCH + dt.timedelta(microseconds=micros)).isoformat(" ", "microseconds")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table, columns in _TIMES.items():
            for c in columns:
                op.execute(
                    f"ALTER TABLE {table} ALTER COLUMN {c} TYPE BIGINT USING "
                    f"(EXTRACT(EPOCH FROM {c}) * 1000000)::bigint"
                )
        op.drop_column("victim_records", "status")
        op.drop_column("victim_records", "first_seen_source")
        op.drop_constraint("victim_series_database_series_key_key", "victim_series", "unique")
        _series_index()
        return
    # SQLite: the integers written in place (a column holds any type), then each table
    # copied once with the new column types (batch mode)
    raw: Any = bind.connection.dbapi_connection
    raw.create_function("ridgeline_0023_micros", 1, _micros, deterministic=True)
    for table, columns in _TIMES.items():
        sets = ", ".join(f"{c} = ridgeline_0023_micros({c})" for c in columns)
        bind.exec_driver_sql(f"UPDATE {table} SET {sets}")
    raw.create_function("ridgeline_0023_micros", 1, None)
    for table, columns in _TIMES.items():
        copy = _series(sa.DateTime(timezone=True)) if table == "victim_series" else None
        with op.batch_alter_table(table, recreate="always", copy_from=copy) as batch:
            for c in columns:
                batch.alter_column(
                    c,
                    type_=sa.BigInteger(),
                    existing_type=sa.DateTime(timezone=True),
                    existing_nullable=c not in _NOT_NULL,
                )
            if table == "victim_records":
                batch.drop_column("status")
                batch.drop_column("first_seen_source")
    _series_index()


def _series_index() -> None:
    op.create_index(
        "ux_victim_series_key", "victim_series", ["database", "series_key"], unique=True
    )


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index("ux_victim_series_key", table_name="victim_series")
    op.add_column("victim_records", sa.Column("status", sa.String(length=16), nullable=True))
    op.add_column(
        "victim_records", sa.Column("first_seen_source", sa.String(length=64), nullable=True)
    )
    op.execute(
        "UPDATE victim_records SET first_seen_source = database, status = CASE WHEN "
        "identified_at IS NULL THEN 'unidentified' ELSE 'identified' END"
    )
    if bind.dialect.name == "postgresql":
        for table, columns in _TIMES.items():
            for c in columns:
                op.execute(
                    f"ALTER TABLE {table} ALTER COLUMN {c} TYPE TIMESTAMP WITH TIME ZONE "
                    f"USING TIMESTAMPTZ 'epoch' + {c} * INTERVAL '1 microsecond'"
                )
        op.alter_column("victim_records", "status", nullable=False)
        op.alter_column("victim_records", "first_seen_source", nullable=False)
        op.create_unique_constraint(
            "victim_series_database_series_key_key", "victim_series", ["database", "series_key"]
        )
        return
    # SQLite: the tables copied with the old column types first (the copy casts to the
    # declared type, which would make a year of a time's text), then the text written
    # in place
    for table, columns in _TIMES.items():
        copy = None
        if table == "victim_series":  # unnamed, as 0005 made it
            copy = _series(sa.BigInteger(), sa.UniqueConstraint("database", "series_key"))
        with op.batch_alter_table(table, recreate="always", copy_from=copy) as batch:
            for c in columns:
                batch.alter_column(
                    c,
                    type_=sa.DateTime(timezone=True),
                    existing_type=sa.BigInteger(),
                    existing_nullable=c not in _NOT_NULL,
                )
            if table == "victim_records":
                batch.alter_column("status", nullable=False, existing_type=sa.String(16))
                batch.alter_column("first_seen_source", nullable=False, existing_type=sa.String(64))
    raw: Any = bind.connection.dbapi_connection
    raw.create_function("ridgeline_0023_text", 1, _text, deterministic=True)
    for table, columns in _TIMES.items():
        sets = ", ".join(f"{c} = ridgeline_0023_text({c})" for c in columns)
        bind.exec_driver_sql(f"UPDATE {table} SET {sets}")
    raw.create_function("ridgeline_0023_text", 1, None)

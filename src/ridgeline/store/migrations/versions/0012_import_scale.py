"""import scale: compact entry hashes, per-import batch rows, range change rows

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 07:40:00

A 1,000,000-hash import left 554 bytes per entry (issue 10 item 10). Where the bytes
went and what replaces them:

- `entry_signals` held each hash twice as text (`value` and `lookup_key`, 64
  characters each for PDQ) and indexed the text again. Now `key` holds the hash's raw
  bytes (hex) or the sha256 of its text (anything else), `value` only text that is not
  the key's hex, and the lookup index only the key's first 8 bytes (lookups compare
  the whole key). Existing rows are converted here.
- `ix_entries_list_status` held every entry's status again; `ix_entries_list_id` and
  a partial `ix_entries_unconfirmed` (what review reads) replace it.
- Every imported entry had its own `import` history event, a change-feed row and two
  timestamps. Now an import writes one `import_batches` row (time, actor, format,
  status), `import_ranges` rows with the entries' file positions as runs, and one
  `changes` row per inserted range (`entry_id` to `last_entry_id`). Bulk-imported
  entries carry `batch_id` and NULL times (read as the batch's). Old rows stay valid:
  their events, times and single-entry change rows are read as before.
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIX = "substr(key, 1, 8)"
UNCONFIRMED = "status <> 'confirmed'"


def _key(value: str) -> tuple[bytes, str | None]:
    """(key, text kept) as `ridgeline.lists.models.entry_key` and `needs_text` make them."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if raw and raw.hex() == value:
        return raw, None
    return hashlib.sha256(value.encode()).digest(), value


def _lookup_key(value: str) -> str:
    if len(value) <= 200:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


#: Migration 0008's SQLite triggers on `entries`: recreating the table (batch mode)
#: drops them, so they are made again. The insert trigger now leaves rows of a bulk
#: import (`batch_id` set) to their writer, `lists.insert_entries`, which adds them to
#: `list_counts` with one UPDATE per insert: a row trigger per imported entry cost a
#: third of the insert. (PostgreSQL's statement triggers count them as before.)
SQLITE_ENTRY_TRIGGERS = {
    "list_counts_entry_insert": """CREATE TRIGGER list_counts_entry_insert AFTER INSERT ON entries
        WHEN NEW.deleted_at IS NULL AND NEW.batch_id IS NULL BEGIN
        UPDATE list_counts SET entries = entries + 1 WHERE list_id = NEW.list_id; END""",
    "list_counts_entry_delete": """CREATE TRIGGER list_counts_entry_delete AFTER DELETE ON entries
        WHEN OLD.deleted_at IS NULL BEGIN
        UPDATE list_counts SET entries = entries - 1 WHERE list_id = OLD.list_id; END""",
    "list_counts_entry_update": """CREATE TRIGGER list_counts_entry_update
        AFTER UPDATE OF deleted_at, list_id ON entries BEGIN
        UPDATE list_counts SET entries = entries - 1
            WHERE list_id = OLD.list_id AND OLD.deleted_at IS NULL;
        UPDATE list_counts SET entries = entries + 1
            WHERE list_id = NEW.list_id AND NEW.deleted_at IS NULL; END""",
}


def _sqlite_entry_triggers(*, bulk_aware: bool = True) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, statement in SQLITE_ENTRY_TRIGGERS.items():
        if not bulk_aware:
            statement = statement.replace(" AND NEW.batch_id IS NULL", "")
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "import_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch", sa.String(length=64), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_import_batches_list_id", "import_batches", ["list_id"])
    op.create_table(
        "import_ranges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("first_entry_id", sa.Integer(), nullable=False),
        sa.Column("last_entry_id", sa.Integer(), nullable=False),
        sa.Column("positions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["import_batches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_import_ranges_batch_id", "import_ranges", ["batch_id"])
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_entries_batch_id_import_batches", "import_batches", ["batch_id"], ["id"]
        )
        batch.alter_column("created_at", existing_type=sa.DateTime(timezone=True), nullable=True)
        batch.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=True)
    _sqlite_entry_triggers()
    op.drop_index("ix_entries_list_status", table_name="entries")
    op.create_index("ix_entries_list_id", "entries", ["list_id"])
    op.create_index(
        "ix_entries_unconfirmed",
        "entries",
        ["list_id", "status"],
        sqlite_where=sa.text(UNCONFIRMED),
        postgresql_where=sa.text(UNCONFIRMED),
    )
    with op.batch_alter_table("changes") as batch:
        batch.add_column(sa.Column("last_entry_id", sa.Integer(), nullable=True))

    op.drop_index("ix_entry_signals_lookup", table_name="entry_signals")
    with op.batch_alter_table("entry_signals") as batch:
        batch.add_column(sa.Column("key", sa.LargeBinary(), nullable=True))
        batch.alter_column("value", existing_type=sa.Text(), nullable=True)
    bind = op.get_bind()
    table = sa.table(
        "entry_signals",
        sa.column("id", sa.Integer()),
        sa.column("value", sa.Text()),
        sa.column("key", sa.LargeBinary()),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, table.c.value)
            .where(table.c.id > last)
            .order_by(table.c.id)
            .limit(10_000)
        ).all()
        if not rows:
            break
        updates = []
        for row_id, value in rows:
            key, kept = _key(value)
            updates.append({"row_id": row_id, "new_key": key, "kept": kept})
        bind.execute(
            table.update()
            .where(table.c.id == sa.bindparam("row_id"))
            .values(key=sa.bindparam("new_key"), value=sa.bindparam("kept")),
            updates,
        )
        last = rows[-1][0]
    with op.batch_alter_table("entry_signals") as batch:
        batch.alter_column("key", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("lookup_key")
    op.create_index("ix_entry_signals_key", "entry_signals", [sa.text(PREFIX)])


def downgrade() -> None:
    op.drop_index("ix_entry_signals_key", table_name="entry_signals")
    with op.batch_alter_table("entry_signals") as batch:
        batch.add_column(sa.Column("lookup_key", sa.String(length=208), nullable=True))
    bind = op.get_bind()
    table = sa.table(
        "entry_signals",
        sa.column("id", sa.Integer()),
        sa.column("value", sa.Text()),
        sa.column("key", sa.LargeBinary()),
        sa.column("lookup_key", sa.String()),
    )
    rows = bind.execute(sa.select(table.c.id, table.c.value, table.c.key)).all()
    updates = []
    for row_id, value, key in rows:
        text = value if value is not None else bytes(key).hex()
        updates.append({"row_id": row_id, "text": text, "lk": _lookup_key(text)})
    if updates:
        bind.execute(
            table.update()
            .where(table.c.id == sa.bindparam("row_id"))
            .values(value=sa.bindparam("text"), lookup_key=sa.bindparam("lk")),
            updates,
        )
    with op.batch_alter_table("entry_signals") as batch:
        batch.alter_column("lookup_key", existing_type=sa.String(length=208), nullable=False)
        batch.alter_column("value", existing_type=sa.Text(), nullable=False)
        batch.drop_column("key")
    op.create_index("ix_entry_signals_lookup", "entry_signals", ["signal", "lookup_key"])
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("last_entry_id")
    op.drop_index("ix_entries_unconfirmed", table_name="entries")
    op.drop_index("ix_entries_list_id", table_name="entries")
    op.create_index("ix_entries_list_status", "entries", ["list_id", "status"])
    with op.batch_alter_table("entries") as batch:
        batch.drop_constraint("fk_entries_batch_id_import_batches", type_="foreignkey")
        batch.drop_column("batch_id")
    _sqlite_entry_triggers(bulk_aware=False)
    op.drop_index("ix_import_ranges_batch_id", table_name="import_ranges")
    op.drop_table("import_ranges")
    op.drop_index("ix_import_batches_list_id", table_name="import_batches")
    op.drop_table("import_batches")

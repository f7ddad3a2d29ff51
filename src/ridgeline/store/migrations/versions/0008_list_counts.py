"""list_counts: live entries per list, kept by triggers (cheap `lists ls`)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:35:00

Counting 10,000,000 entries took seconds on every `lists ls`; the count is kept per
list by triggers instead, so every writer (ORM, bulk executemany, restores) keeps it
true. SQLite: row triggers. PostgreSQL: statement triggers over transition tables (one
UPDATE per statement, not per row, so bulk imports stay fast).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = [
    """CREATE TRIGGER list_counts_list_insert AFTER INSERT ON lists BEGIN
        INSERT INTO list_counts (list_id, entries) VALUES (NEW.id, 0); END""",
    """CREATE TRIGGER list_counts_entry_insert AFTER INSERT ON entries
        WHEN NEW.deleted_at IS NULL BEGIN
        UPDATE list_counts SET entries = entries + 1 WHERE list_id = NEW.list_id; END""",
    """CREATE TRIGGER list_counts_entry_delete AFTER DELETE ON entries
        WHEN OLD.deleted_at IS NULL BEGIN
        UPDATE list_counts SET entries = entries - 1 WHERE list_id = OLD.list_id; END""",
    """CREATE TRIGGER list_counts_entry_update AFTER UPDATE OF deleted_at, list_id ON entries
        BEGIN
        UPDATE list_counts SET entries = entries - 1
            WHERE list_id = OLD.list_id AND OLD.deleted_at IS NULL;
        UPDATE list_counts SET entries = entries + 1
            WHERE list_id = NEW.list_id AND NEW.deleted_at IS NULL; END""",
]

POSTGRES_TRIGGERS = [
    """CREATE FUNCTION list_counts_list_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO list_counts (list_id, entries) VALUES (NEW.id, 0);
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER list_counts_list_insert AFTER INSERT ON lists
        FOR EACH ROW EXECUTE FUNCTION list_counts_list_insert()""",
    """CREATE FUNCTION list_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            UPDATE list_counts c SET entries = c.entries - d.n
            FROM (SELECT list_id, count(*) AS n FROM old_rows WHERE deleted_at IS NULL
                  GROUP BY list_id) d
            WHERE c.list_id = d.list_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            UPDATE list_counts c SET entries = c.entries + d.n
            FROM (SELECT list_id, count(*) AS n FROM new_rows WHERE deleted_at IS NULL
                  GROUP BY list_id) d
            WHERE c.list_id = d.list_id;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER list_counts_entry_insert AFTER INSERT ON entries
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION list_counts_apply()""",
    """CREATE TRIGGER list_counts_entry_update AFTER UPDATE ON entries
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION list_counts_apply()""",
    """CREATE TRIGGER list_counts_entry_delete AFTER DELETE ON entries
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
        EXECUTE FUNCTION list_counts_apply()""",
]


def upgrade() -> None:
    op.create_table(
        "list_counts",
        sa.Column("list_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("list_id"),
    )
    op.execute(
        "INSERT INTO list_counts (list_id, entries) SELECT l.id, (SELECT count(*) FROM "
        "entries e WHERE e.list_id = l.id AND e.deleted_at IS NULL) FROM lists l"
    )
    triggers = POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table in (("list_counts_list_insert", "lists"),
                            ("list_counts_entry_insert", "entries"),
                            ("list_counts_entry_update", "entries"),
                            ("list_counts_entry_delete", "entries")):  # fmt: skip
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS list_counts_apply()")
        op.execute("DROP FUNCTION IF EXISTS list_counts_list_insert()")
    else:
        for name in ("list_counts_list_insert", "list_counts_entry_insert",
                     "list_counts_entry_delete", "list_counts_entry_update"):  # fmt: skip
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("list_counts")

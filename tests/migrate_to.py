"""Alembic up or down to a revision, for the migration tests: `Store.migrate` only goes
up, and a migration's test goes down and up again over stored rows."""

from __future__ import annotations

from alembic import command

from ridgeline.store import Store


def migrate_to(store: Store, revision: str) -> None:
    """Up or down to `revision`, on SQLite with foreign keys off as `Store.migrate` does
    (batch mode recreates tables, and a DROP would cascade to rows referring to them)."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        with conn.begin():
            cfg = store.alembic_config(conn)
            if revision < (store.current_revision() or ""):
                command.downgrade(cfg, revision)
            else:
                command.upgrade(cfg, revision)
        if store.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()

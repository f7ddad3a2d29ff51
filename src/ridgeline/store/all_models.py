"""Import every model module so `Base.metadata` knows all tables (for Alembic)."""

from ridgeline.store import models  # noqa: F401

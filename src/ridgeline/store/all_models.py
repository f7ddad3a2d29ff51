"""Import every model module so `Base.metadata` knows all tables (for Alembic)."""

from ridgeline.audit import models as audit_models  # noqa: F401
from ridgeline.exchange import models as exchange_models  # noqa: F401
from ridgeline.reports import models as report_models  # noqa: F401
from ridgeline.review import models as review_models  # noqa: F401
from ridgeline.scan import models as scan_models  # noqa: F401
from ridgeline.store import models  # noqa: F401
from ridgeline.victims import models as victims_models  # noqa: F401

"""Every concept's tables, imported together so `Base.metadata` knows the whole schema.

Each concept owns its tables in its own `models` module; only Alembic's environment
and the schema tests need all of them at once, and they import this module. It sits
above every concept, so no concept (and not `ridgeline.store`) imports it.
"""

from ridgeline.audit import models as audit_models  # noqa: F401
from ridgeline.cases import models as cases_models  # noqa: F401
from ridgeline.evidence import models as evidence_models  # noqa: F401
from ridgeline.exchange import models as exchange_models  # noqa: F401
from ridgeline.feedback import models as feedback_models  # noqa: F401
from ridgeline.lists import models as lists_models  # noqa: F401
from ridgeline.releases import models as releases_models  # noqa: F401
from ridgeline.reports import models as report_models  # noqa: F401
from ridgeline.review import models as review_models  # noqa: F401
from ridgeline.routing import models as routing_models  # noqa: F401
from ridgeline.scan import models as scan_models  # noqa: F401
from ridgeline.service import models as service_models  # noqa: F401
from ridgeline.store import models as store_models  # noqa: F401
from ridgeline.submit import models as submit_models  # noqa: F401
from ridgeline.triage import models as triage_models  # noqa: F401
from ridgeline.ui import models as ui_models  # noqa: F401
from ridgeline.victims import models as victims_models  # noqa: F401
from ridgeline.webhooks import models as webhook_models  # noqa: F401

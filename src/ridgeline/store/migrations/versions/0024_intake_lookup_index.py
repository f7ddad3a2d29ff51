"""intake: the identifier index covers what linking reads (kind, value, role,
report_id, service, device_type, possible_proxy, event_at), so an identifier lookup
reads no table row (each one a random page of a table that outgrows the cache);
`received_reports.sha256` loses its index, which nothing queries (a random-keyed
insert on every report), and so do the case links' (kind, value), which served only
unlinking a file gone viral (found now through the reports holding it); an
identifier's `original` is NULL when it is the normalised value itself (most are) and
'' when the report gave none (it was NULL), instead of a second copy of the value

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 01:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LOOKUP = ["kind", "value", "role", "report_id", "service", "device_type", "possible_proxy",
           "event_at"]  # fmt: skip


def upgrade() -> None:
    op.execute(sa.text("UPDATE report_identifiers SET original = '' WHERE original IS NULL"))
    op.execute(sa.text("UPDATE report_identifiers SET original = NULL WHERE original = value"))
    op.drop_index("ix_report_identifiers_kind_value", table_name="report_identifiers")
    op.create_index("ix_report_identifiers_lookup", "report_identifiers", _LOOKUP)
    op.drop_index("ix_received_reports_sha256", table_name="received_reports")
    op.drop_index("ix_case_links_kind_value", table_name="case_links")


def downgrade() -> None:
    op.create_index("ix_case_links_kind_value", "case_links", ["kind", "value"])
    op.create_index("ix_received_reports_sha256", "received_reports", ["sha256"])
    op.drop_index("ix_report_identifiers_lookup", table_name="report_identifiers")
    op.create_index("ix_report_identifiers_kind_value", "report_identifiers", ["kind", "value"])
    op.execute(sa.text("UPDATE report_identifiers SET original = value WHERE original IS NULL"))
    op.execute(sa.text("UPDATE report_identifiers SET original = NULL WHERE original = ''"))

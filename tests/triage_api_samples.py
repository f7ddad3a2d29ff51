"""Sample requests for the triage, routing, statistics and law-enforcement endpoints,
used by the every-endpoint x every-role matrix in test_service.py. The matrix's
law-enforcement key acts for `AGENCY`; each sample makes a received report triaged and
made available to it (one file the ESP viewed, so file 0 is open)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ridgeline import routing, triage
from ridgeline.store import Store
from triage_samples import make_file, make_report, store_received

AGENCY = "Matrix agency"


def triaged(store: Store) -> int:
    with store.session() as s:
        rid = store_received(s, make_report(), [make_file(1, viewed=True)])
        row_at = make_report().incident_summary.incident_date_time  # type: ignore[union-attr]
        assert row_at is not None
        triage.record(s, rid, row_at, triage.Assessment(3, (triage.Reason("default", 3, "t"),)))
        routing.record_many(s, [(rid, [routing.Availability(AGENCY, ("matrix",))])])
        return rid


def _store(e: Any) -> Store:
    return e.store  # type: ignore[no-any-return]


TRIAGE_SAMPLES: dict[tuple[str, str], Callable[[Any, str | None], dict[str, Any]]] = {
    ("GET", "/v1/triage/queue"): lambda e, r: {"url": "/v1/triage/queue"},
    ("GET", "/v1/triage/{report_id}"): lambda e, r: {"url": f"/v1/triage/{triaged(_store(e))}"},
    ("POST", "/v1/triage/{report_id}/override"): lambda e, r: {
        "url": f"/v1/triage/{triaged(_store(e))}/override",
        "json": {"priority": 2, "reason": "matrix"},
    },
    ("GET", "/v1/routing/rules"): lambda e, r: {"url": "/v1/routing/rules"},
    ("GET", "/v1/stats/intake"): lambda e, r: {"url": "/v1/stats/intake"},
    ("GET", "/v1/le/reports"): lambda e, r: {"url": "/v1/le/reports"},
    ("GET", "/v1/le/reports/{report_id}"): lambda e, r: {
        "url": f"/v1/le/reports/{triaged(_store(e))}"
    },
    ("GET", "/v1/le/reports/{report_id}/files/{position}"): lambda e, r: {
        "url": f"/v1/le/reports/{triaged(_store(e))}/files/0"
    },
    ("POST", "/v1/le/reports/{report_id}/legal-process"): lambda e, r: {
        "url": f"/v1/le/reports/{triaged(_store(e))}/legal-process",
        "json": {"kind": "warrant", "reference": "W-matrix"},
    },
    ("GET", "/v1/le/reports/{report_id}/preservation"): lambda e, r: {
        "url": f"/v1/le/reports/{triaged(_store(e))}/preservation"
    },
}

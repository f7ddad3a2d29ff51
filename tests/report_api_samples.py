"""Sample requests for the `/v1/reports` endpoints, used by the every-endpoint x
every-role matrix in test_service.py. Filing and retracting samples use reports that
are already finished / retracted, so they succeed without a CyberTipline server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ridgeline.reports import core, samples
from ridgeline.reports import documents as docs
from ridgeline.store import Store


def report_in(store: Store, state: str = "validated") -> int:
    with store.session() as s:
        row = core.create_report(s, samples.minimal_report(), [], None)
        if state != "validated":
            row.state = state
            row.ncmec_report_id = 1 if state != "needs_attention" else None
        return row.id


def _store(e: Any) -> Store:
    return e.store  # type: ignore[no-any-return]


REPORT_SAMPLES: dict[tuple[str, str], Callable[[Any, str | None], dict[str, Any]]] = {
    ("POST", "/v1/reports"): lambda e, r: {
        "url": "/v1/reports",
        "json": {"report": docs.to_json(samples.minimal_report())},
    },
    ("GET", "/v1/reports"): lambda e, r: {"url": "/v1/reports"},
    ("GET", "/v1/reports/{report_id}"): lambda e, r: {"url": f"/v1/reports/{report_in(_store(e))}"},
    ("GET", "/v1/reports/{report_id}/xml"): lambda e, r: {
        "url": f"/v1/reports/{report_in(_store(e))}/xml"
    },
    ("PATCH", "/v1/reports/{report_id}"): lambda e, r: {
        "url": f"/v1/reports/{report_in(_store(e))}",
        "json": {"report": {"additionalInfo": "added by the operator"}},
    },
    ("POST", "/v1/reports/{report_id}/validate"): lambda e, r: {
        "url": f"/v1/reports/{report_in(_store(e))}/validate"
    },
    ("POST", "/v1/reports/{report_id}/file"): lambda e, r: {
        "url": f"/v1/reports/{report_in(_store(e), 'finished')}/file",
        "json": {"environment": "test"},
    },
    ("POST", "/v1/reports/{report_id}/retract"): lambda e, r: {
        "url": f"/v1/reports/{report_in(_store(e), 'retracted')}/retract",
        "json": {"environment": "test"},
    },
    ("POST", "/v1/reports/{report_id}/resolve"): lambda e, r: {
        "url": f"/v1/reports/{report_in(_store(e), 'needs_attention')}/resolve",
        "json": {"not_submitted": True},
    },
}

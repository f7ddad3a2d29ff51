"""Sample requests for `/v1/intake` and `/v1/cases`, used by the every-endpoint x every-role
matrix in test_service.py. Each sample takes in fresh synthetic reports first (through
the library, as `reports intake` would), so the case and report ids exist."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from ridgeline import intake
from ridgeline.intake import synthetic
from ridgeline.store import Store


def document(n: int = 0, marker: str | None = None) -> dict[str, Any]:
    """A synthetic `{"report", "files"}` document; `marker` makes it unique."""
    pop = synthetic.Population(reports=10)
    import random

    doc = synthetic.report_json(n, pop, random.Random(n))
    doc["report"]["additionalInfo"] = f"sample {marker or uuid.uuid4().hex}"
    return doc


def take_in(store: Store, count: int = 2) -> list[intake.Outcome]:
    """Store `count` linked reports (same user) and return their outcomes."""
    docs = []
    for i in range(count):
        doc = document(0)
        doc["report"]["additionalInfo"] = f"sample {uuid.uuid4().hex} {i}"
        docs.append(intake.Incoming(f"sample-{i}.json", json.dumps(doc).encode(), "json"))
    with store.session() as s:
        return intake.ingest(s, docs)


def _store(e: Any) -> Store:
    return e.store  # type: ignore[no-any-return]


def _case(e: Any) -> int:
    outcome = take_in(_store(e))[0]
    assert outcome.case_id is not None
    return outcome.case_id


def _report(e: Any) -> int:
    outcome = take_in(_store(e), 1)[0]
    assert outcome.report_id is not None
    return outcome.report_id


def _split(e: Any) -> dict[str, Any]:
    outcomes = take_in(_store(e), 2)
    case_id = outcomes[0].case_id
    return {
        "url": f"/v1/cases/{case_id}/split",
        "json": {"reports": [outcomes[1].report_id], "reason": "different people"},
    }


def _merge(e: Any) -> dict[str, Any]:
    a, b = take_in(_store(e), 1)[0], take_in(_store(e), 1)[0]
    if a.case_id == b.case_id:  # synthetic user 0 links them: split first
        with _store(e).session() as s:
            from ridgeline import cases

            assert a.case_id is not None and b.report_id is not None
            new = cases.split(s, a.case_id, [b.report_id], "sample split")
        return {"url": f"/v1/cases/{a.case_id}/merge", "json": {"other": new, "reason": "same"}}
    return {"url": f"/v1/cases/{a.case_id}/merge", "json": {"other": b.case_id, "reason": "x"}}


INTAKE_SAMPLES: dict[tuple[str, str], Callable[[Any, str | None], dict[str, Any]]] = {
    ("POST", "/v1/intake"): lambda e, r: {"url": "/v1/intake", "json": document()},
    ("GET", "/v1/intake/{report_id}"): lambda e, r: {"url": f"/v1/intake/{_report(e)}"},
    ("GET", "/v1/cases"): lambda e, r: {"url": "/v1/cases"},
    ("GET", "/v1/cases/lookup"): lambda e, r: (
        take_in(_store(e), 1),
        {"url": "/v1/cases/lookup", "params": {"kind": "email", "value": "user0@example.com"}},
    )[1],
    ("GET", "/v1/cases/{case_id}"): lambda e, r: {"url": f"/v1/cases/{_case(e)}"},
    ("POST", "/v1/cases/{case_id}/split"): lambda e, r: _split(e),
    ("POST", "/v1/cases/{case_id}/merge"): lambda e, r: _merge(e),
}

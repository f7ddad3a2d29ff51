"""Schemathesis over the whole OpenAPI document of a real `ridgeline serve`, with every
role's key and with none: no answer may be a 5xx, and every answer must match the schema
the document declares for it. Bounded (`RIDGELINE_SCHEMATHESIS_EXAMPLES` examples per
operation, default 4) so it fits in the suite; `make fuzz` runs it with more."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from ridgeline import lists as L
from ridgeline.service.keys import ROLES, create_key
from ridgeline.store import Store

EXAMPLES = int(os.environ.get("RIDGELINE_SCHEMATHESIS_EXAMPLES", "4"))
CHECKS = [not_a_server_error, response_schema_conformance]


def _setup(store: Store) -> tuple[dict[str, str], int]:
    """A key per role (plus a spare one for DELETE /v1/keys/{key_id}) and a small list."""
    keys: dict[str, str] = {}
    with store.session() as s:
        for role in ROLES:
            agency = "Example Agency" if role == "law-enforcement" else None
            _, keys[role] = create_key(s, f"{role}-st", role, rate_limit=100_000, agency=agency)
        spare, _ = create_key(s, "spare-st", "provider")
        hl = L.create_list(s, "known", description="a list for schemathesis")
        L.add_entry(s, hl, {"md5": "0" * 31 + "1"}, source="schemathesis")
        spare_id = int(spare.id)
    return keys, spare_id


@pytest.mark.slow
def test_every_operation_every_role_no_5xx_and_schema_conformance(
    store: Store, serve_process: Callable[..., Any]
) -> None:
    keys, spare_id = _setup(store)
    env = {**os.environ, "RIDGELINE_EVIDENCE_KEY": base64.b64encode(bytes(range(32))).decode()}
    server = serve_process("serve", "--port", "{port}", "--db", store.url, env=env)
    schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json")
    session = requests.Session()
    failures: list[str] = []
    operations = 0
    calls = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1
        fixed: dict[str, Any] = {}
        if op.method.upper() == "DELETE" and op.path == "/v1/keys/{key_id}":
            fixed = {"key_id": spare_id}  # the role keys must outlive the run

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy(path_parameters=fixed or None), who=st.just(None))
        def run(case: Any, who: None) -> None:
            nonlocal calls
            for role in (None, *ROLES):
                headers = {} if role is None else {"Authorization": f"Bearer {keys[role]}"}
                response = case.call(base_url=server.base, session=session, headers=headers)
                calls += 1
                try:
                    case.validate_response(response, checks=CHECKS)
                except BaseException as exc:  # FailureGroup; collected to report them all
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    failures.append(f"{case.method.upper()} {case.path} as {role}: {exc}")

        run()
    assert operations >= 60, operations
    assert calls >= operations * len(ROLES)
    assert not failures, "\n\n".join(failures[:20])

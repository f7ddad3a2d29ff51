"""Survivor self-submission: hashes computed on the person's own device, nothing else.

A public page (`page.render_page`, served at `/submit-hashes/` by `ridgeline serve`)
computes PDQ (Ridgeline's C core as WebAssembly) and MD5 in the browser and sends only
those hashes; `core.submit` puts them on the self-submitted list under a case number
the person keeps, and `core.withdraw` takes every one of them back. See
docs/self-submission.md.
"""

from ridgeline.submit.core import (
    ACTOR,
    LIST_NAME,
    CaseStatus,
    Item,
    ItemResult,
    Limits,
    SubmissionRefused,
    SubmissionResult,
    allow_list_check,
    case_key,
    case_status,
    new_case_number,
    normalize_case_number,
    normalize_item,
    pseudonym,
    self_submitted_list,
    submit,
    withdraw,
)

__all__ = [
    "ACTOR",
    "LIST_NAME",
    "CaseStatus",
    "Item",
    "ItemResult",
    "Limits",
    "SubmissionRefused",
    "SubmissionResult",
    "allow_list_check",
    "case_key",
    "case_status",
    "new_case_number",
    "normalize_case_number",
    "normalize_item",
    "pseudonym",
    "self_submitted_list",
    "submit",
    "withdraw",
]

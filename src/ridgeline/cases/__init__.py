"""Cases: received reports linked by the identifiers they share (see docs/intake.md)."""

from ridgeline.cases.core import (
    CaseDetail,
    CaseSummary,
    LinkView,
    case_of,
    cases_with,
    current_case,
    linked_counts,
    list_cases,
    merge,
    show,
    split,
    summary,
)
from ridgeline.cases.linking import LinkConfig, Linker, LinkResult, link, resplit

__all__ = [
    "CaseDetail",
    "CaseSummary",
    "LinkConfig",
    "LinkResult",
    "LinkView",
    "Linker",
    "case_of",
    "cases_with",
    "current_case",
    "link",
    "linked_counts",
    "list_cases",
    "merge",
    "resplit",
    "show",
    "split",
    "summary",
]

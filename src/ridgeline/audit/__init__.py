"""Audits of hash lists: reproducible samples, blind independent verdicts, reports."""

from ridgeline.audit.core import (
    MODES,
    REASONS,
    apply_findings,
    audit_warnings,
    close_audit,
    create_audit,
    get_audit,
    item_outcomes,
    next_item,
    people_who_touched,
    sampled_entry_ids,
    submit_verdict,
)
from ridgeline.audit.report import audit_report, report_html

__all__ = [
    "MODES",
    "REASONS",
    "apply_findings",
    "audit_report",
    "audit_warnings",
    "close_audit",
    "create_audit",
    "get_audit",
    "item_outcomes",
    "next_item",
    "people_who_touched",
    "report_html",
    "sampled_entry_ids",
    "submit_verdict",
]

"""Intake: receive -> store -> identifiers -> link -> triage -> route (docs/intake.md)."""

from ridgeline.intake.core import (
    Accepted,
    IntakeConfig,
    Outcome,
    Pipeline,
    ReceivedView,
    Step,
    default_steps,
    ingest,
    report_view,
)
from ridgeline.intake.sources import Incoming, from_paths, submission
from ridgeline.intake.writer import GroupWriter

__all__ = [
    "Accepted",
    "GroupWriter",
    "Incoming",
    "IntakeConfig",
    "Outcome",
    "Pipeline",
    "ReceivedView",
    "Step",
    "default_steps",
    "from_paths",
    "ingest",
    "report_view",
    "submission",
]

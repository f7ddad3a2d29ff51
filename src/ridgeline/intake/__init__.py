"""Intake: receive -> store -> identifiers -> link -> triage -> route (docs/intake.md)."""

"""Cases: received reports linked by the identifiers they share (see docs/intake.md)."""

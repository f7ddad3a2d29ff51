"""The `ridgeline` command: a thin click layer over the library.

Each command group lives in its own module and is imported only when it runs
(`ridgeline.cli.lazy`): start-up stays a few tens of milliseconds.
"""

from __future__ import annotations

import click

from ridgeline import __version__
from ridgeline.cli.lazy import LazyGroup

#: Top-level commands: name -> (module, attribute, one-line help).
COMMANDS = {
    "audit": ("ridgeline.cli.audit", "audit_group",
              "Audit a list: sample, blind independent verdicts, report with confidence "
              "intervals."),
    "cases": ("ridgeline.cli.intake", "cases",
              "Cases: received reports linked by the identifiers they share."),
    "db": ("ridgeline.cli.db", "db_group", "Database schema and location."),
    "demo": ("ridgeline.cli.demo", "demo",
             "Build hash lists from benign generated images (one through three-reviewer "
             "review), then hash a folder of edited copies and unrelated images and show "
             "which match."),
    "evidence": ("ridgeline.cli.review", "evidence",
                 "Media kept for review, encrypted at rest (AES-GCM)."),
    "exchange": ("ridgeline.cli.exchange_live", "exchange",
                 "Live exchange sources: NCMEC hash sharing, StopNCII, ThreatExchange."),
    "flood": ("ridgeline.cli.scan", "flood",
              "Entries held by flood control (their matches fire no actions)."),
    "hash": ("ridgeline.cli.hash", "hash_command",
             "Hash files and print their signals (one row per file)."),
    "indicator": ("ridgeline.cli.indicator", "indicator_command",
                  "The index, time to identification and the estimate of all victims."),
    "keys": ("ridgeline.cli.keys", "keys",
             "API keys for `ridgeline serve` (stored as argon2 hashes)."),
    "lists": ("ridgeline.cli.lists", "lists", "Hash lists: block lists and allow lists."),
    "log": ("ridgeline.cli.log", "log_group",
            "The tamper-evident log of reviews, audits, list changes and unblurs."),
    "match": ("ridgeline.cli.match", "match_command",
              "Match HASH values or PATHs (images, videos, any file) against lists."),
    "quarantine": ("ridgeline.cli.scan", "quarantine",
                   "Files moved aside by the quarantine action."),
    "reports": ("ridgeline.cli.reports", "reports",
                "CyberTipline reports: create, validate, file, retract (the test server first)."),
    "routing": ("ridgeline.cli.routing", "routing_group",
                "Which agency receives which reports: rules by country and US state, "
                "fallback desk."),
    "review": ("ridgeline.cli.review", "review",
               "Multi-review queue: next item, verdicts, media views, status."),
    "reviewers": ("ridgeline.cli.reviewers", "reviewers",
                  "Reviewers: roles (reviewer, senior), categories, daily cap, break policy."),
    "scan": ("ridgeline.cli.scan", "scan_command",
             "Scan files, folders and archives for matches; record results and fire actions."),
    "scans": ("ridgeline.cli.scans", "scans",
              "Past scan runs and what each file gave (newest first)."),
    "serve": ("ridgeline.cli.serve", "serve", "Serve the HTTP API (OpenAPI at /openapi.json)."),
    "users": ("ridgeline.cli.users", "users",
              "Web UI users who log in with a name and password (argon2id)."),
    "victims": ("ridgeline.cli.victims", "victims",
                "The victim-identification registry (victims.jsonl interchange)."),
    "webhooks": ("ridgeline.cli.webhooks", "webhooks",
                 "Per-list match webhooks (HMAC-SHA256 signed, retried, dead-lettered)."),
}  # fmt: skip


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ridgeline")
def main() -> None:
    """Find, verify, report and track known CSAM by its fingerprints."""

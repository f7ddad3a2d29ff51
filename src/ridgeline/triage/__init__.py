"""Triage of received reports: a priority from 1 (a child may be in imminent danger) to 4
(informational), computed by explainable, configurable rules; analysts override it with
a reason (logged); the queue is sorted by priority, then age.

`assess` is pure; `gather_facts` collects what it needs from the database in batches;
`record_many` stores a batch. See docs/intake.md (Triage rules).
"""

from ridgeline.triage.core import (
    Assessment,
    FileFacts,
    Item,
    Pre,
    Reason,
    TriageFacts,
    assess,
    facts_of,
    file_facts,
    file_hashes,
    finish,
    gather_facts,
    prepare,
)
from ridgeline.triage.rules import (
    DEFAULT_RULES_TOML,
    PRIORITIES,
    BadRules,
    TriageRules,
    default_rules,
    load_rules,
    parse_rules,
)
from ridgeline.triage.stored import (
    QueueRow,
    StoredTriage,
    current,
    current_many,
    forget,
    override,
    queue,
    record,
    record_many,
    rerecord_many,
)

__all__ = [
    "DEFAULT_RULES_TOML",
    "PRIORITIES",
    "Assessment",
    "BadRules",
    "FileFacts",
    "Item",
    "Pre",
    "QueueRow",
    "Reason",
    "StoredTriage",
    "TriageFacts",
    "TriageRules",
    "assess",
    "current",
    "current_many",
    "default_rules",
    "facts_of",
    "file_facts",
    "file_hashes",
    "finish",
    "forget",
    "gather_facts",
    "load_rules",
    "override",
    "parse_rules",
    "prepare",
    "queue",
    "record",
    "record_many",
    "rerecord_many",
]

"""Triage rules: which facts of a received report raise or lower its priority.

Rules are data, not code, so an operator can tune them without a release and every
priority can be explained by the rules that fired. They are read from a TOML or JSON
file with exactly the shape of `DEFAULT_RULES_TOML` below (the documented defaults);
a missing section keeps its default, an unknown key or a bad value is refused with its
name, so a typo never silently switches a rule off.

Priorities: 1 a child may be in imminent danger, 2 urgent, 3 standard, 4 informational.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ridgeline.errors import BadInput
from ridgeline.reports.model import INCIDENT_TYPES

PRIORITIES = {
    1: "a child may be in imminent danger",
    2: "urgent",
    3: "standard",
    4: "informational",
}
#: The report annotations a rule can name (SPEC.md section 4, reportAnnotations).
ANNOTATIONS = (
    "sextortion",
    "csam_solicitation",
    "minor_to_minor_interaction",
    "spam",
    "sadistic_online_exploitation",
)

DEFAULT_RULES_TOML = """\
# Ridgeline triage rules (the defaults). Each rule that fires gives a reason; the report
# takes the most urgent priority among them (1 is the most urgent), then `recency` may
# raise it, and `informational` lowers it to 4 only when nothing else fired.
default_priority = 3

[escalation]           # the reporter filled in escalateToHighPriority
priority = 1

[incident_types]       # exact CyberTipline incident type strings
"Child Sex Trafficking" = 1
"Child Sexual Molestation" = 1
"Online Enticement of Children for Sexual Acts" = 2

[annotations]          # reportAnnotations flags
sextortion = 2
sadistic_online_exploitation = 1

[new_material]         # files with hashes, none of them on any hash list
priority = 2

[unidentified_series]  # a file belongs to a series whose victim is not identified
priority = 2

[victim_age]           # a victim (or minor intended recipient) younger than this
under = 13
priority = 2

[access_to_children]   # free text names access to children, or a minor is the recipient
priority = 2
keywords = ["teacher", "coach", "babysitter", "babysitting", "daycare", "foster",
            "my daughter", "my son", "stepdaughter", "stepson", "youth group", "scout leader"]

[linked_reports]       # linked to at least this many other reports
at_least = 5
priority = 2

[recency]              # the incident is this recent (days before intake): raise a level
within_days = 7
raise_by = 1

[informational]        # lower to 4 when no other rule fired
batched = true         # batchedReport (e.g. VIRAL_POTENTIAL_MEME)
all_files_meme = true  # every file marked potentialMeme or viral
no_files_no_people = true  # neither files nor a reported person

[[combinations]]       # these rules firing together give this priority
when = ["new_material", "access_to_children"]
priority = 1

[[combinations]]
when = ["sextortion", "victim_age"]
priority = 1
"""

#: Rule names as they appear in reasons (and in `combinations.when`).
RULE_NAMES = (
    "escalation",
    "incident_type",
    *ANNOTATIONS,
    "new_material",
    "unidentified_series",
    "victim_age",
    "access_to_children",
    "linked_reports",
    "recency",
    "informational",
    "combination",
    "default",
    "override",
)


@dataclass(frozen=True)
class Combination:
    when: tuple[str, ...]
    priority: int


@dataclass(frozen=True)
class TriageRules:
    """The parsed rules; a priority of None switches that rule off."""

    default_priority: int = 3
    escalation: int | None = 1
    incident_types: Mapping[str, int] = field(default_factory=dict)
    annotations: Mapping[str, int] = field(default_factory=dict)
    new_material: int | None = 2
    unidentified_series: int | None = 2
    victim_age_under: int = 13
    victim_age: int | None = 2
    access_to_children: int | None = 2
    access_keywords: tuple[str, ...] = ()
    linked_at_least: int = 5
    linked_reports: int | None = 2
    recency_days: int = 7
    recency_raise: int = 1
    informational_batched: bool = True
    informational_all_meme: bool = True
    informational_empty: bool = True
    combinations: tuple[Combination, ...] = ()
    source: str = "defaults"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "default_priority": self.default_priority,
            "escalation": {"priority": self.escalation},
            "incident_types": dict(self.incident_types),
            "annotations": dict(self.annotations),
            "new_material": {"priority": self.new_material},
            "unidentified_series": {"priority": self.unidentified_series},
            "victim_age": {"under": self.victim_age_under, "priority": self.victim_age},
            "access_to_children": {
                "priority": self.access_to_children,
                "keywords": list(self.access_keywords),
            },
            "linked_reports": {"at_least": self.linked_at_least, "priority": self.linked_reports},
            "recency": {"within_days": self.recency_days, "raise_by": self.recency_raise},
            "informational": {
                "batched": self.informational_batched,
                "all_files_meme": self.informational_all_meme,
                "no_files_no_people": self.informational_empty,
            },
            "combinations": [
                {"when": list(c.when), "priority": c.priority} for c in self.combinations
            ],
        }


class BadRules(BadInput):
    """A triage rules file that cannot be used (the message names the key)."""

    code = "bad_triage_rules"


_SECTIONS: dict[str, set[str] | None] = {
    "default_priority": None,
    "escalation": {"priority"},
    "incident_types": None,
    "annotations": None,
    "new_material": {"priority"},
    "unidentified_series": {"priority"},
    "victim_age": {"under", "priority"},
    "access_to_children": {"priority", "keywords"},
    "linked_reports": {"at_least", "priority"},
    "recency": {"within_days", "raise_by"},
    "informational": {"batched", "all_files_meme", "no_files_no_people"},
    "combinations": None,
}


def _priority(value: Any, where: str, *, allow_off: bool = True) -> int | None:
    if allow_off and (value is False or value == "off"):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in PRIORITIES:
        off = ' (or false / "off" to switch the rule off)' if allow_off else ""
        raise BadRules(f"{where}: priority must be 1, 2, 3 or 4{off}, not {value!r}")
    return value


def _count(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRules(f"{where} must be a whole number >= {minimum}, not {value!r}")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise BadRules(f"{where} must be true or false, not {value!r}")
    return value


def _table(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, Mapping):
        raise BadRules(f"[{name}] must be a table")
    allowed = _SECTIONS[name]
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise BadRules(
                f"[{name}] has unknown key(s) {', '.join(unknown)}; "
                f"expected {', '.join(sorted(allowed))}"
            )
    return value


def parse_rules(doc: Mapping[str, Any], *, source: str = "rules") -> TriageRules:
    """Rules from a parsed document; missing sections keep their defaults."""
    base = _defaults_doc()
    unknown = sorted(set(doc) - set(_SECTIONS))
    if unknown:
        raise BadRules(
            f"unknown section(s) {', '.join(unknown)} in {source}; "
            f"expected {', '.join(sorted(_SECTIONS))}"
        )
    merged: dict[str, Any] = dict(base)
    for key, value in doc.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            if key in ("incident_types", "annotations"):
                merged[key] = dict(value)  # replaces the default mapping as a whole
            else:
                merged[key] = {**base[key], **value}
        else:
            merged[key] = value
    return _build(merged, source)


def _build(doc: Mapping[str, Any], source: str) -> TriageRules:
    incident = _table(doc, "incident_types")
    for name in incident:
        if name not in INCIDENT_TYPES:
            raise BadRules(
                f"[incident_types] {name!r} is not a CyberTipline incident type; "
                f"expected one of: {'; '.join(INCIDENT_TYPES)}"
            )
    annotations = _table(doc, "annotations")
    for name in annotations:
        if name not in ANNOTATIONS:
            raise BadRules(
                f"[annotations] {name!r} is not a report annotation; "
                f"expected one of {', '.join(ANNOTATIONS)}"
            )
    age = _table(doc, "victim_age")
    access = _table(doc, "access_to_children")
    keywords = access.get("keywords", [])
    if not isinstance(keywords, list) or not all(
        isinstance(k, str) and k.strip() for k in keywords
    ):
        raise BadRules("[access_to_children] keywords must be a list of non-empty strings")
    linked = _table(doc, "linked_reports")
    recency = _table(doc, "recency")
    info = _table(doc, "informational")
    combos_raw = doc.get("combinations", [])
    if not isinstance(combos_raw, list):
        raise BadRules("combinations must be an array of tables ([[combinations]])")
    combos = []
    for i, combo in enumerate(combos_raw, 1):
        if not isinstance(combo, Mapping) or set(combo) != {"when", "priority"}:
            raise BadRules(f"combinations #{i} needs exactly the keys when and priority")
        when = combo["when"]
        if not isinstance(when, list) or len(when) < 2:
            raise BadRules(f"combinations #{i}: when must list at least two rule names")
        for name in when:
            if name not in RULE_NAMES:
                raise BadRules(
                    f"combinations #{i}: {name!r} is not a rule name; "
                    f"expected one of {', '.join(RULE_NAMES)}"
                )
        prio = _priority(combo["priority"], f"combinations #{i}", allow_off=False)
        assert prio is not None
        combos.append(Combination(tuple(when), prio))
    default = _priority(doc.get("default_priority", 3), "default_priority", allow_off=False)
    assert default is not None
    return TriageRules(
        default_priority=default,
        escalation=_priority(_table(doc, "escalation").get("priority"), "[escalation]"),
        incident_types={
            k: p
            for k, v in incident.items()
            if (p := _priority(v, f"[incident_types] {k!r}")) is not None
        },
        annotations={
            k: p
            for k, v in annotations.items()
            if (p := _priority(v, f"[annotations] {k}")) is not None
        },
        new_material=_priority(_table(doc, "new_material").get("priority"), "[new_material]"),
        unidentified_series=_priority(
            _table(doc, "unidentified_series").get("priority"), "[unidentified_series]"
        ),
        victim_age_under=_count(age.get("under"), "[victim_age] under", 1),
        victim_age=_priority(age.get("priority"), "[victim_age]"),
        access_to_children=_priority(access.get("priority"), "[access_to_children]"),
        access_keywords=tuple(k.strip().lower() for k in keywords),
        linked_at_least=_count(linked.get("at_least"), "[linked_reports] at_least", 1),
        linked_reports=_priority(linked.get("priority"), "[linked_reports]"),
        recency_days=_count(recency.get("within_days"), "[recency] within_days"),
        recency_raise=_count(recency.get("raise_by"), "[recency] raise_by"),
        informational_batched=_flag(info.get("batched"), "[informational] batched"),
        informational_all_meme=_flag(info.get("all_files_meme"), "[informational] all_files_meme"),
        informational_empty=_flag(
            info.get("no_files_no_people"), "[informational] no_files_no_people"
        ),
        combinations=tuple(combos),
        source=source,
    )


_DEFAULT_DOC: dict[str, Any] | None = None


def _defaults_doc() -> dict[str, Any]:
    global _DEFAULT_DOC
    if _DEFAULT_DOC is None:
        _DEFAULT_DOC = tomllib.loads(DEFAULT_RULES_TOML)
    return _DEFAULT_DOC


_DEFAULT_RULES: TriageRules | None = None


def default_rules() -> TriageRules:
    """The documented defaults (`DEFAULT_RULES_TOML`)."""
    global _DEFAULT_RULES
    if _DEFAULT_RULES is None:
        _DEFAULT_RULES = _build(_defaults_doc(), "defaults")
    return _DEFAULT_RULES


def load_rules(path: str | Path | None = None) -> TriageRules:
    """Rules from a `.toml` or `.json` file, or the defaults when `path` is None."""
    if path is None:
        return default_rules()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise BadRules(f"cannot read triage rules {p}: {exc.strerror or exc}") from None
    try:
        is_json = p.suffix.lower() == ".json"
        doc = json.loads(raw) if is_json else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRules(f"triage rules {p} are not valid {p.suffix[1:] or 'TOML'}: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRules(f"triage rules {p} must be a table / JSON object at the top")
    return parse_rules(doc, source=str(p))

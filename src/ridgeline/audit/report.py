"""Audit reports: the numbers as JSON, and a self-contained HTML page with SVG charts.

The verified share counts only complete items; an item the auditors disagree on is
counted as not verified (conservative). Intervals are Wilson and Clopper-Pearson at
the audit's confidence; they treat the sample as drawn with replacement, which for a
sample from a finite list makes them slightly wide (conservative), never narrow.
Kappa compares the first two auditors of each complete item on verified/exception.
"""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline.audit.core import REASONS, item_outcomes
from ridgeline.audit.media import media_views
from ridgeline.audit.models import Audit
from ridgeline.audit.stats import clopper_pearson_interval, cohens_kappa, wilson_interval
from ridgeline.lists.models import Entry, HashList
from ridgeline.timeutil import isoformat


def _share(verified: int, complete: int, confidence: float) -> dict[str, Any]:
    return {
        "verified": verified,
        "complete": complete,
        "share": None if complete == 0 else verified / complete,
        "wilson": list(wilson_interval(verified, complete, confidence)),
        "clopper_pearson": list(clopper_pearson_interval(verified, complete, confidence)),
    }


def _breakdown(rows: list[dict[str, Any]], key: str, confidence: float) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    out = []
    for name in sorted(groups):
        members = groups[name]
        complete = [r for r in members if r["outcome"] != "incomplete"]
        verified = sum(1 for r in complete if r["outcome"] == "verified")
        out.append(
            {"group": name, "items": len(members), **_share(verified, len(complete), confidence)}
        )
    return out


def audit_report(session: Session, audit: Audit) -> dict[str, Any]:
    """Everything an auditor's report states, as JSON-ready data."""
    hash_list = session.get(HashList, audit.list_id)
    rows = item_outcomes(session, audit)
    ids = [r["entry_id"] for r in rows]
    entries: dict[int, Entry] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        entries.update((e.id, e) for e in session.scalars(select(Entry).where(Entry.id.in_(chunk))))
    for row in rows:
        entry = entries.get(row["entry_id"])
        row["source"] = (entry.source if entry else None) or "(none)"
        classes = (entry.classifications if entry else None) or []
        row["classification"] = (
            ", ".join(sorted(f"{c['scheme']}:{c['label']}" for c in classes)) or "unclassified"
        )
    complete = [r for r in rows if r["outcome"] != "incomplete"]
    verified = sum(1 for r in complete if r["outcome"] == "verified")
    first: list[str] = []
    second: list[str] = []
    for r in complete:
        if len(r["verdicts"]) >= 2:
            first.append("verified" if r["verdicts"][0]["verified"] else "exception")
            second.append("verified" if r["verdicts"][1]["verified"] else "exception")
    agree = sum(1 for a, b in zip(first, second, strict=True) if a == b)
    views = media_views(session, audit)
    judged = [(v, r["entry_id"]) for r in rows for v in r["verdicts"]]
    # damaged-file is what a view finds when no evidence exists: it needs no view.
    blind = [
        v for v, entry_id in judged
        if (v["auditor"], entry_id) not in views and v["reason"] != "damaged-file"
    ]  # fmt: skip
    exceptions = {reason: 0 for reason in REASONS}
    for r in complete:
        if r["outcome"] == "exception":
            exceptions[r["reason"]] = exceptions.get(r["reason"], 0) + 1
    return {
        "audit": {
            "id": audit.id,
            "list": hash_list.name if hash_list else None,
            "mode": audit.mode,
            "strata": audit.strata,
            "margin": audit.margin,
            "confidence": audit.confidence,
            "expected_p": audit.expected_p,
            "seed": audit.seed,
            "auditors_per_item": audit.auditors_per_item,
            "population": audit.population,
            "sample_size": audit.sample_size,
            "created_at": isoformat(audit.created_at),
            "created_by": audit.created_by,
            "state": audit.state,
        },
        "progress": {
            "complete": len(complete),
            "incomplete": len(rows) - len(complete),
            "verdicts": sum(len(r["verdicts"]) for r in rows),
        },
        "verified": {
            "confidence": audit.confidence,
            **_share(verified, len(complete), audit.confidence),
        },
        "media": {
            "verdicts_after_viewing": len(judged) - len(blind),
            "verdicts_from_hashes_alone": len(blind),
            "verified_from_hashes_alone": sum(1 for v in blind if v["verified"]),
        },
        "agreement": {
            "pairs": len(first),
            "observed": None if not first else agree / len(first),
            "kappa": cohens_kappa(first, second),
        },
        "exceptions": [{"reason": k, "count": v} for k, v in exceptions.items()],
        "disagreements": sum(1 for r in complete if r["outcome"] == "disagreement"),
        "by_source": _breakdown(rows, "source", audit.confidence),
        "by_classification": _breakdown(rows, "classification", audit.confidence),
        "findings": [
            {"entry_id": r["entry_id"], "outcome": r["outcome"], "reason": r["reason"]}
            for r in complete
            if r["outcome"] in ("exception", "disagreement")
        ],
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def _bar_chart(title: str, bars: list[tuple[str, float, float | None, float | None]]) -> str:
    """Horizontal bars 0-100 %, with an interval whisker when given."""
    width, left, row = 640, 220, 26
    height = 40 + row * max(1, len(bars))
    scale = width - left - 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="4" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (label, value, low, high) in enumerate(bars):
        y = 28 + i * row
        w = max(0.0, min(1.0, value)) * scale
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" font-size="12" text-anchor="end">'
            f"{html.escape(label[:32])}</text>"
        )
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="18" fill="#4a78b5"/>')
        if low is not None and high is not None:
            x1, x2 = left + low * scale, left + high * scale
            parts.append(
                f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y + 9}" y2="{y + 9}" '
                'stroke="#222" stroke-width="2"/>'
            )
        parts.append(
            f'<text x="{left + w + 4:.1f}" y="{y + 14}" font-size="11">{_pct(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page (no scripts, no external resources)."""
    a, v, k = report["audit"], report["verified"], report["agreement"]
    conf = f"{100 * a['confidence']:g} %"
    summary = _table(
        ["", ""],
        [
            ["List", a["list"]],
            ["Mode", a["mode"] + (f" by {a['strata']}" if a["strata"] else "")],
            ["Population (listed entries)", a["population"]],
            ["Sample size", a["sample_size"]],
            ["Seed", a["seed"]],
            ["Auditors per item", a["auditors_per_item"]],
            ["Complete items", report["progress"]["complete"]],
            ["Verified", f"{v['verified']} of {v['complete']} ({_pct(v['share'])})"],
            [f"Wilson {conf} CI", f"{_pct(v['wilson'][0])} – {_pct(v['wilson'][1])}"],
            [
                f"Clopper-Pearson {conf} CI",
                f"{_pct(v['clopper_pearson'][0])} – {_pct(v['clopper_pearson'][1])}",
            ],
            ["Cohen's kappa", "undefined" if k["kappa"] is None else f"{k['kappa']:.3f}"],
            ["Observed agreement", _pct(k["observed"])],
            ["Disagreements", report["disagreements"]],
            [
                "Verdicts from hashes alone (media not viewed)",
                f"{report['media']['verdicts_from_hashes_alone']}"
                f" ({report['media']['verified_from_hashes_alone']} verified)",
            ],
        ],
    )
    exceptions = _table(
        ["Reason", "Items"], [[e["reason"], e["count"]] for e in report["exceptions"]]
    )
    most = max([e["count"] for e in report["exceptions"]] + [1])
    exc_chart = _bar_chart(
        "Exceptions by reason (share of the largest)",
        [(e["reason"], e["count"] / most, None, None) for e in report["exceptions"]],
    )

    def breakdown(rows: list[dict[str, Any]]) -> str:
        return _table(
            ["Group", "Items", "Complete", "Verified", "Share", "Wilson CI"],
            [
                [
                    r["group"], r["items"], r["complete"], r["verified"], _pct(r["share"]),
                    f"{_pct(r['wilson'][0])} – {_pct(r['wilson'][1])}",
                ]
                for r in rows
            ],
        )  # fmt: skip

    chart = _bar_chart(
        f"Verified share by source, with Wilson {conf} interval",
        [
            (r["group"], r["share"] or 0.0, r["wilson"][0], r["wilson"][1])
            for r in report["by_source"]
        ],
    )
    findings = _table(
        ["Entry", "Outcome", "Reason"],
        [[f["entry_id"], f["outcome"], f["reason"]] for f in report["findings"]],
    )
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left}"
    )
    title = html.escape(f"Audit {a['id']} of list {a['list']}")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{style}</style></head><body><h1>{title}</h1>"
        f"<p>Created {html.escape(str(a['created_at']))}; state {html.escape(a['state'])}.</p>"
        f"<h2>Summary</h2>{summary}<h2>Verified share</h2>{chart}"
        f"<h2>Exceptions by reason</h2>{exceptions}{exc_chart}"
        f"<h2>By source</h2>{breakdown(report['by_source'])}"
        f"<h2>By classification</h2>{breakdown(report['by_classification'])}"
        f"<h2>Findings</h2>{findings}</body></html>\n"
    )

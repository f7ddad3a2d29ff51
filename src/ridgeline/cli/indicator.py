"""`ridgeline indicator`: the global victim-identification indicator (docs/indicator.md)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from ridgeline.cli.common import db_option, handle_errors, open_store


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for i, v in enumerate(value):
            key = v.get("period") or v.get("stratum") or str(i)
            _flatten(f"{prefix}[{key}]", v, out)
    else:
        out.append(
            (
                prefix,
                ""
                if value is None
                else json.dumps(value)
                if isinstance(value, list)
                else str(value),
            )
        )


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _percent(share: float | None) -> str:
    return "" if share is None else f"{100 * share:.1f} %"


def _index(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _p(value: float | None) -> str:
    """`=0.042`, or `<0.001` for the tiny p-values of large strata (not `=0`)."""
    if value is None:
        return "=-"
    return "<0.001" if value < 0.001 else f"={value:.3g}"


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


#: The period table's columns: short headers (eight columns fit 80 characters with
#: seven-digit counts), each explained in the legend under the table.
_PERIOD_COLUMNS = (
    ("period", "period", ""),
    ("known", "known", "victims known at the period's end"),
    ("new", "new_victims", "victims first seen in the period"),
    ("identified", "identifications", "victims identified in the period"),
    ("unident.", "unidentified", "not identified at the period's end"),
    ("share", "identified_share", "identified share at the period's end"),
    ("traded", "actively_traded", "actively traded (found on 5 or more occasions)"),
    ("index", "index", "unidentified victims, baseline period = 100"),
)


def indicator_table(data: dict[str, Any], width: int | None = None) -> str:
    """The indicator as text: summary, periods, survival, log-rank, the estimate.

    Headers are short words with a legend, so that on an 80-column terminal no header
    or value is folded in the middle of a word."""
    from ridgeline.output import render_table

    p_value = data["logrank"]["p_value"] if data["logrank"] else None  # before rounding
    data = _rounded(data)

    lines = [
        f"as of {data['as_of']}: {data['known']} known victims after merging, "
        f"{data['identified']} identified ({100 * (data['identified_share'] or 0):.1f} %), "
        f"{data['unidentified']} not identified, {data['actively_traded']} actively traded",
        "",
        f"Periods (index: {data['baseline']} = 100)",
    ]
    periods = [
        {
            label: _percent(p[key])
            if key == "identified_share"
            else _index(p[key])
            if key == "index"
            else p[key]
            for label, key, _ in _PERIOD_COLUMNS
        }
        for p in data["periods"]
    ]
    lines.append(render_table(periods, [label for label, _, _ in _PERIOD_COLUMNS], width=width))
    lines += [f"  {label}: {meaning}" for label, _, meaning in _PERIOD_COLUMNS if meaning]
    rows = []
    for s in [data["survival"], *data["strata"]]:
        ci = f"({_days(s['median_low'])}–{_days(s['median_high'])})"
        rows.append(
            {
                "stratum": s["stratum"],
                "victims": s["victims"],
                "identified": s["identified"],
                "median days (95 % CI)": f"{_days(s['median_days'])} {ci}",
                **{f"≤ {k}": _percent(v["share"]) for k, v in s["within"].items()},
            }
        )
    lines += [
        "",
        "Time to identification (Kaplan-Meier, censored at as-of)",
        render_table(rows, keep=["stratum"], width=width),
        "  ≤ 30d, ≤ 1y, ≤ 5y: identified within 30 days, 1 year, 5 years of first seen",
    ]
    if data["logrank"]:
        lr = data["logrank"]
        lines.append(
            f"log-rank by {lr['by']}: chi2={lr['statistic']:.2f} "
            f"df={lr['degrees_of_freedom']} p{_p(p_value)}"
        )
    est = data["estimate"]
    lines.append("")
    if est:
        lines.append(
            f"Estimated victims in all ({est['method']}, {', '.join(est['sources'])}): "
            f"{est['population']:.0f} (95 % CI {est['low']:.0f}–{est['high']:.0f}); "
            f"{est['unseen']:.0f} held by no database; estimated share identified "
            f"{100 * est['identified_share']:.1f} % ({100 * est['identified_share_low']:.1f}–"
            f"{100 * est['identified_share_high']:.1f} %)"
        )
    else:
        lines.append(f"No population estimate: {data['estimate_note']}")
    return "\n".join(lines)


@click.command("indicator")
@click.option("--as-of", "as_of", default=None, help="Date of the indicator (default: now).")
@click.option(
    "--baseline",
    default=None,
    help="A date in the index's baseline period (default: the first period).",
)
@click.option(
    "--period", type=click.Choice(["month", "quarter", "year"]), default="year", show_default=True
)
@click.option(
    "--by",
    type=click.Choice(["age_band", "gender", "region"]),
    default="age_band",
    show_default=True,
    help="Strata of the survival figures.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv", "table"]),
    default="table",
    show_default=True,
)
@click.option(
    "--charts",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write index, survival and estimate charts (PNG and SVG) here.",
)
@db_option
@handle_errors
def indicator_command(
    as_of: str | None,
    baseline: str | None,
    period: str,
    by: str,
    fmt: str,
    charts: Path | None,
    db: str | None,
) -> None:
    """The index, time to identification and the estimate of all victims."""
    from ridgeline.indicator import compute, load_table
    from ridgeline.victims.records import parse_time

    def when(text: str | None, name: str) -> Any:
        if text is None:
            return None
        try:
            return parse_time(text, name)
        except ValueError as exc:
            from ridgeline.errors import BadInput

            raise BadInput(str(exc)) from None

    store = open_store(db)
    table = load_table(store)
    result = compute(
        table,
        as_of=when(as_of, "--as-of"),
        baseline=when(baseline, "--baseline"),
        period=period,
        by=by,
    )
    data = result.to_json()
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif fmt == "csv":
        rows: list[tuple[str, str]] = []
        _flatten("", data, rows)
        writer = csv.writer(sys.stdout)
        writer.writerow(["name", "value"])
        writer.writerows(rows)
    else:
        sys.stdout.write(indicator_table(data) + "\n")
    if charts is not None:
        from ridgeline.indicator.charts import write_charts

        for path in write_charts(result, table, charts):
            click.echo(str(path), err=True)

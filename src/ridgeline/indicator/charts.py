"""The indicator's charts, as PNG and SVG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ridgeline.indicator.core import Indicator, survival_curves
from ridgeline.indicator.data import VictimTable


def write_charts(indicator: Indicator, table: VictimTable, directory: Path) -> list[Path]:
    """index.{png,svg}, survival.{png,svg}, estimate.{png,svg} in `directory`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: object, name: str) -> None:
        for ext in ("png", "svg"):
            path = directory / f"{name}.{ext}"
            fig.savefig(path, dpi=120, bbox_inches="tight")  # type: ignore[attr-defined]
            written.append(path)
        plt.close(fig)  # type: ignore[arg-type]

    labels = [p.period for p in indicator.periods]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(
        labels,
        [p.index if p.index is not None else float("nan") for p in indicator.periods],
        marker="o",
    )
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_title(f"Unidentified victims known at period end (index, {indicator.baseline} = 100)")
    ax.set_ylabel("index")
    ax.tick_params(axis="x", rotation=60)
    save(fig, "index")

    as_of = dt.datetime.fromisoformat(indicator.as_of.replace("Z", "+00:00"))
    fig, ax = plt.subplots(figsize=(8, 4))
    for stratum, days, surv, low, high in survival_curves(table, as_of, indicator.by):
        line = ax.step(days / 365.25, surv, where="post", label=stratum)[0]
        ax.fill_between(days / 365.25, low, high, step="post", alpha=0.2, color=line.get_color())
    ax.set_xlabel("years since first seen")
    ax.set_ylabel("share still unidentified")
    ax.set_title(f"Time to identification (Kaplan-Meier, 95 % band) by {indicator.by or 'all'}")
    ax.legend()
    save(fig, "survival")

    fig, ax = plt.subplots(figsize=(6, 4))
    est = indicator.estimate
    if est is not None:
        ax.bar(["known", "estimated"], [est.observed, est.population], color=["C0", "C1"])
        ax.errorbar(
            [1],
            [est.population],
            yerr=[[est.population - est.low], [est.high - est.population]],
            color="black",
            capsize=8,
        )
        ax.bar(["known"], [indicator.identified], color="C2", label="identified")
        ax.set_title(f"All victims, including unseen ({est.method}, 95 % interval)")
        ax.legend()
    else:
        ax.text(0.5, 0.5, indicator.estimate_note or "no estimate", ha="center")
    save(fig, "estimate")
    return written

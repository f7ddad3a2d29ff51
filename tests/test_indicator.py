"""The indicator against the generator's ground truth and against lifelines/statsmodels
computed directly here, on the real merge path (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ridgeline.cli import main
from ridgeline.cli.indicator import indicator_table
from ridgeline.indicator import compute, load_table, table_from_records
from ridgeline.indicator.core import population_estimate
from ridgeline.store import Store
from ridgeline.victims.registry import import_records
from ridgeline.victims.synth import BANDS, MEDIAN_DAYS, generate

END = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
DAY = 86_400.0


def _truth_durations(world):  # type: ignore[no-untyped-def]
    known = world.known
    first = world.merged_first[known]
    ident = world.identified[known]
    end = int((END - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds())
    event = (ident >= 0) & (ident <= end)
    durations = (np.where(event, ident, end) - first) / DAY
    return durations, event.astype(int), world.band[known]


def test_indicator_matches_truth_lifelines_and_statsmodels(store: Store) -> None:
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    world = generate(11, 3000)
    import_records(store, [("synth", [json.dumps(r) for r in world.json_records()])])
    table = load_table(store)
    result = compute(table, as_of=END, period="year", by="age_band")
    # the same numbers without the database: the stored merge equals the in-memory one
    direct = compute(table_from_records(list(world.records())), as_of=END, by="age_band")
    assert direct.to_json() == result.to_json()

    assert result.known == int(world.known.sum())
    # unidentified known at each period end, from the generator's arrays
    first, ident = world.merged_first, world.identified
    for row in result.periods:
        end = int(dt.datetime.fromisoformat(row.end.replace("Z", "+00:00")).timestamp())
        known = first < end
        identified = known & (ident >= 0) & (np.maximum(ident, first) < end)
        assert row.known == int(known.sum())
        assert row.unidentified == int((known & ~identified).sum())
    base = result.periods[0].unidentified
    assert [r.index for r in result.periods] == [
        100.0 * r.unidentified / base for r in result.periods
    ]
    assert sum(r.new_victims for r in result.periods) == result.known
    assert sum(r.identifications for r in result.periods) == result.identified

    durations, events, bands = _truth_durations(world)
    kmf = KaplanMeierFitter().fit(durations, events)
    assert result.survival.median_days == pytest.approx(kmf.median_survival_time_, rel=1e-9)
    assert result.survival.within["1y"].share == pytest.approx(
        1 - float(kmf.survival_function_at_times(365.25).iloc[0]), abs=1e-9
    )
    for stratum in result.strata:
        true_median = MEDIAN_DAYS[stratum.stratum]
        assert stratum.median_low is not None and stratum.median_high is not None
        half = (stratum.median_high - stratum.median_low) / 2
        assert abs(stratum.median_days - true_median) < 3 * half  # type: ignore[operator]
        mask = bands == BANDS.index(stratum.stratum)
        own = KaplanMeierFitter().fit(durations[mask], events[mask])
        assert stratum.median_days == pytest.approx(own.median_survival_time_, rel=1e-9)
    lr = multivariate_logrank_test(durations, bands, events)
    assert result.logrank is not None
    assert result.logrank.statistic == pytest.approx(lr.test_statistic, rel=1e-9)
    assert result.logrank.p_value < 1e-6  # the bands' medians differ by design

    est = result.estimate
    assert est is not None and est.method == "loglinear"
    assert est.low <= world.n <= est.high
    assert est.identified_share == pytest.approx(result.identified / est.population)
    # statsmodels' formula interface on the same cells gives the chosen model's estimate
    import pandas as pd
    import statsmodels.formula.api as smf

    cells = pd.DataFrame(
        [{"n": n, **{f"s{j}": int(p[j]) for j in range(3)}} for p, n in est.cells.items()]
    )
    terms = ["s0", "s1", "s2"] + [
        "s{}:s{}".format(*(est.sources.index(x) for x in t.split("*"))) for t in est.chosen
    ]
    fit = smf.glm(
        "n ~ " + " + ".join(terms),
        cells,
        family=__import__("statsmodels.api").api.families.Poisson(),
    ).fit()
    assert est.population == pytest.approx(est.observed + math.exp(fit.params["Intercept"]))
    # Akaike weights: the chosen model has the largest; the interval, which also holds
    # the uncertainty of choosing, is at least as wide as the chosen model's own
    weights = [m.weight for m in est.models]
    assert sum(weights) == pytest.approx(1.0)
    best = max(est.models, key=lambda m: m.weight)
    assert best.interactions == est.chosen and best.population == pytest.approx(est.population)
    unseen = est.population - est.observed
    own = unseen + unseen**2 * float(fit.bse["Intercept"]) ** 2
    c = math.exp(1.959963984540054 * math.sqrt(math.log(1 + own / unseen**2)))
    assert est.low <= est.observed + unseen / c and est.high >= est.observed + unseen * c


def _coverage(databases: tuple[tuple[str, float], ...], seeds: int = 40) -> float:
    hits = 0
    for seed in range(seeds):
        world = generate(1000 + seed, 400, databases, sightings_per_record=0)
        est = population_estimate(table_from_records(list(world.records())), END)
        assert est is not None
        hits += est.low <= world.n <= est.high
    return hits / seeds


@pytest.mark.slow
def test_interval_covers_true_population_in_about_95_percent_of_seeds() -> None:
    """Over 40 seeds (about 95 % means 35 to 40 of them): the log-linear interval carries
    the uncertainty of the model choice (conditional on the chosen model it covered 35
    of 40), Chapman's is about nominal."""
    assert _coverage((("A", 0.35), ("B", 0.3), ("C", 0.25))) >= 0.9
    assert _coverage((("A", 0.4), ("B", 0.35))) >= 0.875


def test_chapman_two_sources_against_truth() -> None:
    world = generate(5, 2000, (("A", 0.4), ("B", 0.3)), sightings_per_record=0)
    est = population_estimate(table_from_records(list(world.records())), END)
    assert est is not None and est.method == "chapman"
    a, b = world.captured
    n1, n2, m = int(a.sum()), int(b.sum()), int((a & b).sum())
    assert est.population == pytest.approx((n1 + 1) * (n2 + 1) / (m + 1) - 1)
    assert est.low <= world.n <= est.high


def test_cli_indicator_json_csv_table_and_charts(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "r.db")
    assert runner.invoke(main, ["db", "init", "--db", db]).exit_code == 0
    synth = runner.invoke(
        main, ["victims", "synth", str(tmp_path / "in"), "-n", "600", "--seed", "2"]
    )
    assert synth.exit_code == 0, synth.output
    files = sorted(str(p) for p in (tmp_path / "in").glob("*.jsonl"))
    imported = runner.invoke(main, ["victims", "import", *files, "--db", db, "--format", "json"])
    assert imported.exit_code == 0, imported.output
    out = runner.invoke(
        main,
        [
            "indicator",
            "--db",
            db,
            "--as-of",
            "2025-01-01",
            "--format",
            "json",
            "--period",
            "quarter",
            "--charts",
            str(tmp_path / "charts"),
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    world = generate(2, 600)
    assert data["known"] == int(world.known.sum())
    assert data["periods"][0]["period"].endswith("-Q1") or "-Q" in data["periods"][0]["period"]
    for name in ("index", "survival", "estimate"):
        assert (tmp_path / "charts" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (tmp_path / "charts" / f"{name}.svg").read_bytes()[:500]
    csv_out = runner.invoke(
        main, ["indicator", "--db", db, "--as-of", "2025-01-01", "--format", "csv"]
    )
    assert f"known,{data['known']}" in csv_out.stdout
    table = runner.invoke(main, ["indicator", "--db", db, "--as-of", "2025-01-01"])
    assert "Estimated victims in all" in table.stdout and "log-rank" in table.stdout
    # on an 80-column terminal nothing in the tables is folded inside a word
    narrow = indicator_table(data, width=80).splitlines()
    prose = ("as of ", "Estimated victims in all")
    assert [line for line in narrow if len(line) > 80 and not line.startswith(prose)] == []
    rule = [i for i, line in enumerate(narrow) if line.startswith("───")]
    assert narrow[rule[0] - 1].split() == [
        "period", "known", "new", "identified", "unident.", "share", "traded", "index",
    ]  # fmt: skip
    for row in data["periods"]:
        cells = next(line for line in narrow if line.startswith(row["period"] + " ")).split()
        keys = ("period", "known", "new_victims", "identifications", "unidentified")
        assert cells[:5] == [str(row[k]) for k in keys]
    strata = [line.split()[0] for line in narrow[rule[1] + 1 :] if line and line[0] != " "]
    assert [s["stratum"] for s in data["strata"]][:3] == [
        s for s in strata if s not in ("all", "log-rank")
    ][:3]
    bad = runner.invoke(main, ["indicator", "--db", db, "--as-of", "yesterday"])
    assert bad.exit_code == 2 and "--as-of" in bad.output


def test_numpy_kaplan_meier_and_logrank_equal_lifelines() -> None:
    """The indicator's vectorised estimator against lifelines on the same data: the
    curve, its 95 % band, the median and its interval, the log-rank test."""
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test
    from lifelines.utils import median_survival_times

    from ridgeline.indicator.core import KaplanMeier, logrank_test

    rng = np.random.default_rng(5)
    for n in (1, 7, 200, 5000):
        durations = np.round(rng.exponential(400, n)) / 4  # ties, and some zeros
        durations[: n // 10] = 0
        events = rng.random(n) < 0.7
        groups = rng.choice(np.array(["a", "b", "c"]), n)
        km = KaplanMeier.fit(durations, events)
        ref = KaplanMeierFitter().fit(durations, events)
        assert np.array_equal(km.timeline, ref.timeline)
        assert km.survival == pytest.approx(ref.survival_function_.iloc[:, 0].to_numpy(), abs=1e-12)
        band = ref.confidence_interval_survival_function_
        assert km.lower == pytest.approx(band.iloc[:, 0].to_numpy(), abs=1e-9, nan_ok=True)
        assert km.upper == pytest.approx(band.iloc[:, 1].to_numpy(), abs=1e-9, nan_ok=True)
        assert km.median == ref.median_survival_time_
        low, high = (float(x) for x in median_survival_times(ref.confidence_interval_).iloc[0])
        assert km.median_ci == (low, high)
        if n >= 200:
            stat, dof, p = logrank_test(durations, groups, events)
            lr = multivariate_logrank_test(durations, groups, events)
            assert stat == pytest.approx(lr.test_statistic, rel=1e-9)
            assert dof == lr.degrees_of_freedom and p == pytest.approx(lr.p_value, rel=1e-6)

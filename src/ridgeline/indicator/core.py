"""Every number of the indicator, computed on a `VictimTable` at an as-of date.

Definitions (docs/indicator.md): a victim is *known* at t when some database first saw
it before t; *identified* at t when its earliest identification is before t; the
*index* is the unidentified victims known at each period end, baseline period = 100.
Time to identification runs from the merged first-seen; victims still unidentified on
the as-of date are censored there (never dropped).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ridgeline.errors import BadInput
from ridgeline.indicator.data import EPOCH, NONE, VictimTable

DAY = 86_400.0
PERIODS = ("month", "quarter", "year")
STRATA = ("age_band", "gender", "region")
HORIZONS = {"30d": 30.0, "1y": 365.25, "5y": 5 * 365.25}
Z95 = 1.959963984540054


@dataclass(frozen=True)
class PeriodRow:
    """One period: state at its end, events within it."""

    period: str
    start: str
    end: str
    known: int
    new_victims: int
    identifications: int
    identified: int
    unidentified: int
    identified_share: float | None
    actively_traded: int
    index: float | None


@dataclass(frozen=True)
class Share:
    """Share identified within a horizon (1 - S(t)) with its 95 % band."""

    share: float
    low: float
    high: float


@dataclass(frozen=True)
class Survival:
    """Kaplan-Meier time from first seen to identification (days) for one stratum."""

    stratum: str
    victims: int
    identified: int
    censored: int
    median_days: float | None
    median_low: float | None
    median_high: float | None
    within: dict[str, Share]


@dataclass(frozen=True)
class LogRank:
    """Log-rank test that the strata's identification curves are equal."""

    by: str
    statistic: float
    degrees_of_freedom: int
    p_value: float


@dataclass(frozen=True)
class Model:
    """One log-linear model tried (two-way interaction terms), its fit and its Akaike
    weight (the chance it is the best of those tried, given the data)."""

    interactions: list[str]
    aic: float
    population: float
    weight: float


@dataclass(frozen=True)
class Estimate:
    """Multiple-systems estimate of all victims, including those no database holds."""

    method: str  # chapman | loglinear
    sources: list[str]
    observed: int
    population: float
    low: float
    high: float
    unseen: float
    identified_share: float
    identified_share_low: float
    identified_share_high: float
    chosen: list[str]
    models: list[Model]
    cells: dict[str, int]


@dataclass(frozen=True)
class Indicator:
    """The whole indicator; `to_json()` has every number."""

    as_of: str
    baseline: str
    period: str
    by: str | None
    known: int
    identified: int
    unidentified: int
    identified_share: float | None
    actively_traded: int
    by_database: dict[str, int]
    periods: list[PeriodRow]
    survival: Survival
    strata: list[Survival]
    logrank: LogRank | None
    estimate: Estimate | None
    estimate_note: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _iso(seconds: float) -> str:
    return (EPOCH + dt.timedelta(seconds=float(seconds))).isoformat().replace("+00:00", "Z")


def _sec(value: dt.datetime) -> int:
    return int((value - EPOCH).total_seconds())


def _period_start(t: dt.datetime, period: str) -> dt.datetime:
    if period == "year":
        return dt.datetime(t.year, 1, 1, tzinfo=dt.UTC)
    if period == "quarter":
        return dt.datetime(t.year, 3 * ((t.month - 1) // 3) + 1, 1, tzinfo=dt.UTC)
    return dt.datetime(t.year, t.month, 1, tzinfo=dt.UTC)


def _next(t: dt.datetime, period: str) -> dt.datetime:
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    m = t.month - 1 + months
    return dt.datetime(t.year + m // 12, m % 12 + 1, 1, tzinfo=dt.UTC)


def _label(t: dt.datetime, period: str) -> str:
    if period == "year":
        return f"{t.year}"
    if period == "quarter":
        return f"{t.year}-Q{(t.month - 1) // 3 + 1}"
    return f"{t.year}-{t.month:02d}"


@dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan-Meier fit: S(t) on the timeline with its 95 % band (exponential Greenwood).

    The same estimator, band and median rule as lifelines' `KaplanMeierFitter` (the
    tests compare them to 1e-9), on numpy arrays: a million victims in a fraction of a
    second rather than seconds, and no DataFrame per stratum.
    """

    timeline: np.ndarray
    survival: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @staticmethod
    def fit(durations: np.ndarray, events: np.ndarray) -> KaplanMeier:
        durations = np.asarray(durations, dtype=float)
        observed = np.asarray(events).astype(bool)
        # lifelines' timeline: every distinct duration, and 0 (where everyone is at risk)
        timeline, inverse = np.unique(np.concatenate(([0.0], durations)), return_inverse=True)
        inverse = inverse[1:]
        removed = np.bincount(inverse, minlength=len(timeline)).astype(float)
        deaths = np.bincount(inverse[observed], minlength=len(timeline)).astype(float)
        at_risk = len(durations) - np.concatenate(([0.0], np.cumsum(removed)[:-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_s = np.cumsum(np.log(at_risk - deaths) - np.log(at_risk))
            var = deaths / (at_risk * (at_risk - deaths))
            var[~np.isfinite(var)] = 0.0
            greenwood = np.cumsum(var)
            survival = np.exp(log_s)
            v = log_s
            half = Z95 * np.sqrt(greenwood) / v
            lower = np.exp(-np.exp(np.log(-v) - half))
            upper = np.exp(-np.exp(np.log(-v) + half))
        lower[np.isnan(lower)] = 1.0
        upper[np.isnan(upper)] = 1.0
        return KaplanMeier(timeline, survival, lower, upper)

    @staticmethod
    def _median(timeline: np.ndarray, curve: np.ndarray) -> float:
        """The first time the curve is at or below one half (inf if it never is)."""
        if len(curve) == 0 or curve[-1] > 0.5:
            return math.inf
        return float(timeline[int(np.argmax(curve <= 0.5))])

    @property
    def median(self) -> float:
        return self._median(self.timeline, self.survival)

    @property
    def median_ci(self) -> tuple[float, float]:
        return self._median(self.timeline, self.lower), self._median(self.timeline, self.upper)

    def at(self, days: float) -> tuple[float, float, float]:
        """S, lower, upper at `days` (the step function: the last point at or before)."""
        k = max(int(np.searchsorted(self.timeline, days, side="right")) - 1, 0)
        return float(self.survival[k]), float(self.lower[k]), float(self.upper[k])


def _km(durations: np.ndarray, events: np.ndarray, stratum: str) -> tuple[Survival, KaplanMeier]:
    km = KaplanMeier.fit(durations, events)
    low, high = km.median_ci
    within = {}
    for name, days in HORIZONS.items():
        surv, lo_s, hi_s = km.at(days)
        within[name] = Share(1 - surv, 1 - hi_s, 1 - lo_s)

    def fin(x: float) -> float | None:
        return x if math.isfinite(x) else None

    n_events = int(np.asarray(events).sum())
    return (
        Survival(
            stratum,
            len(durations),
            n_events,
            len(durations) - n_events,
            fin(km.median),
            fin(low),
            fin(high),
            within,
        ),
        km,
    )


def logrank_test(
    durations: np.ndarray, groups: np.ndarray, events: np.ndarray
) -> tuple[float, int, float]:
    """Multivariate log-rank test (lifelines' `multivariate_logrank_test`, vectorised):
    (chi-squared statistic, degrees of freedom, p-value)."""
    from scipy.special import chdtrc  # chi-squared survival (lighter than scipy.stats)

    durations = np.asarray(durations, dtype=float)
    observed = np.asarray(events).astype(bool)
    values, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    k = len(values)
    times = np.unique(durations[observed])
    at_risk = np.empty((len(times), k))
    deaths = np.empty((len(times), k))
    for j in range(k):
        mine = np.sort(durations[codes == j])
        dead = np.sort(durations[(codes == j) & observed])
        at_risk[:, j] = len(mine) - np.searchsorted(mine, times, side="left")
        deaths[:, j] = np.searchsorted(dead, times, side="right") - np.searchsorted(
            dead, times, side="left"
        )
    n = at_risk.sum(axis=1)
    d = deaths.sum(axis=1)
    share = at_risk / n[:, None]
    z = (deaths - share * d[:, None]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(n > 1, d * (n - d) / (n - 1), 0.0)
    cov = np.diag((weight[:, None] * share).sum(axis=0)) - (share * weight[:, None]).T @ share
    stat = float(z[:-1] @ np.linalg.solve(cov[:-1, :-1], z[:-1]))
    return stat, k - 1, float(chdtrc(k - 1, stat))


def chapman(n1: int, n2: int, m: int) -> tuple[float, float, float]:
    """Chapman's two-source estimate and a log-normal 95 % interval (Chao 1987)."""
    population = (n1 + 1) * (n2 + 1) / (m + 1) - 1
    var = (n1 + 1) * (n2 + 1) * (n1 - m) * (n2 - m) / ((m + 1) ** 2 * (m + 2))
    observed = n1 + n2 - m
    unseen = population - observed
    if unseen <= 0 or var <= 0:
        half = Z95 * math.sqrt(max(var, 0.0))
        return population, max(population - half, observed), population + half
    c = math.exp(Z95 * math.sqrt(math.log(1 + var / unseen**2)))
    return population, observed + unseen / c, observed + unseen * c


def loglinear(
    patterns: np.ndarray, sources: list[str]
) -> tuple[float, float, float, list[str], list[Model]]:
    """Poisson log-linear models over the 2^k - 1 observed capture cells; AIC chooses.

    `patterns` are capture bitmasks (one per observed victim). Candidates: main effects
    plus every set of two-way interactions (for k > 4, at most two), the k-way term
    being unidentifiable. The unseen cell f0 is exp(intercept), with variance f0 +
    f0^2 var(intercept). The 95 % interval is log-normal (Chao 1987) on the
    unconditional variance of Buckland, Burnham & Augustin (1997) about the chosen
    estimate, so that it also carries the uncertainty of choosing the model: an
    interval conditional on the chosen model covered the truth in 85 % of synthetic
    worlds, not 95 % (docs/indicator.md).
    """
    import statsmodels.api as sm

    k = len(sources)
    cells = np.arange(1, 2**k)
    counts = np.bincount(patterns, minlength=2**k)[1:].astype(float)
    bits = ((cells[:, None] >> np.arange(k)) & 1).astype(float)
    pairs = list(itertools.combinations(range(k), 2))
    max_terms = len(pairs) if k <= 4 else 2
    tried: list[tuple[list[str], float, float, float]] = []  # terms, AIC, f0, var(f0)
    for size in range(0, max_terms + 1):
        for chosen in itertools.combinations(pairs, size):
            if k == 2 and chosen:
                continue  # saturated: no information left for the unseen cell
            cols = [np.ones(len(cells)), *bits.T, *(bits[:, a] * bits[:, b] for a, b in chosen)]
            x = np.column_stack(cols)
            if x.shape[1] >= len(cells):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # separation on sparse cells: kept, AIC says
                    fit = sm.GLM(counts, x, family=sm.families.Poisson()).fit()
            except (ValueError, np.linalg.LinAlgError):
                continue
            b0, se0 = float(fit.params[0]), float(np.sqrt(fit.cov_params()[0, 0]))
            unseen = math.exp(b0) if b0 < 700 else math.inf
            var = unseen + unseen**2 * se0**2
            if not (math.isfinite(unseen) and math.isfinite(var)):
                continue
            names = [f"{sources[a]}*{sources[b]}" for a, b in chosen]
            tried.append((names, float(fit.aic), unseen, var))
    if not tried:
        raise BadInput("no log-linear model could be fitted to these capture counts")
    observed = float(counts.sum())
    aics = np.array([t[1] for t in tried])
    weights = np.exp(-(aics - aics.min()) / 2)
    weights /= weights.sum()
    best = int(np.argmin(aics))
    names, _aic, unseen, _var = tried[best]
    f0 = np.array([t[2] for t in tried])
    spread = np.sqrt(np.array([t[3] for t in tried]) + (f0 - unseen) ** 2)
    var = float((weights * spread).sum()) ** 2
    c = math.exp(Z95 * math.sqrt(math.log(1 + var / unseen**2))) if unseen > 0 else 1.0
    low, high = observed + unseen / c, observed + unseen * c
    models = [
        Model(t[0], t[1], observed + t[2], float(w)) for t, w in zip(tried, weights, strict=True)
    ]
    return observed + unseen, low, high, names, models


def _estimate(
    table: VictimTable, known_mask: np.ndarray, as_of: int, identified_known: int
) -> tuple[Estimate | None, str | None]:
    present = (table.db_first >= 0) & (table.db_first <= as_of)
    used = [d for d in range(len(table.databases)) if present[d].any()]
    if len(used) < 2:
        return None, "a population estimate needs at least two databases"
    held = present[used][:, known_mask]
    k = len(used)
    patterns = (held.astype(np.int64) << np.arange(k)[:, None]).sum(axis=0)
    names = [table.databases[d] for d in used]
    observed = int(known_mask.sum())
    models: list[Model] = []
    if k == 2:
        n1, n2 = int(held[0].sum()), int(held[1].sum())
        m = int((held[0] & held[1]).sum())
        population, low, high = chapman(n1, n2, m)
        method, chosen = "chapman", list[str]()
    else:
        population, low, high, chosen, models = loglinear(patterns, names)
        method = "loglinear"
    cells = np.bincount(patterns, minlength=2**k)
    cell_names = {
        "".join("1" if (c >> j) & 1 else "0" for j in range(k)): int(cells[c])
        for c in range(1, 2**k)
    }
    return (
        Estimate(
            method,
            names,
            observed,
            population,
            low,
            high,
            population - observed,
            identified_known / population,
            identified_known / high,
            identified_known / low,
            chosen,
            models,
            cell_names,
        ),
        None,
    )


def population_estimate(table: VictimTable, as_of: dt.datetime) -> Estimate | None:
    """Only the multiple-systems estimate at `as_of` (None with fewer than two sources)."""
    t = _sec(as_of)
    present = (table.db_first >= 0) & (table.db_first <= t)
    known = np.asarray(present.any(axis=0))
    ident = (table.identified != NONE) & (table.identified <= t) & known
    return _estimate(table, known, t, int(ident.sum()))[0]


def compute(
    table: VictimTable,
    *,
    as_of: dt.datetime | None = None,
    baseline: dt.datetime | None = None,
    period: str = "year",
    by: str | None = "age_band",
) -> Indicator:
    """The indicator at `as_of` (default: now), index relative to the baseline period."""
    if period not in PERIODS:
        raise BadInput(f"period must be one of {', '.join(PERIODS)}")
    if by is not None and by not in STRATA:
        raise BadInput(f"--by must be one of {', '.join(STRATA)}")
    as_of_dt = as_of or dt.datetime.now(dt.UTC)
    t_as_of = _sec(as_of_dt)
    seen = np.where(
        (table.db_first >= 0) & (table.db_first <= t_as_of), table.db_first, np.iinfo(np.int64).max
    )
    first = seen.min(axis=0) if len(table.databases) else np.empty(0, dtype=np.int64)
    known_mask = first <= t_as_of
    first_k = first[known_mask]
    ident_k = table.identified[known_mask]
    is_ident = (ident_k != NONE) & (ident_k <= t_as_of)
    traded_k = table.traded_since[known_mask]
    if not known_mask.any():
        raise BadInput("no victims known on the as-of date: import victims.jsonl first")
    # periods
    starts = [_period_start(_iso_dt(int(first_k.min())), period)]
    while _next(starts[-1], period) < as_of_dt:
        starts.append(_next(starts[-1], period))
    ends = [_next(s, period) for s in starts]
    end_secs = np.array([min(_sec(e), t_as_of + 1) for e in ends], dtype=np.int64)
    start_secs = np.array([_sec(s) for s in starts], dtype=np.int64)
    sorted_first = np.sort(first_k)
    traded_times = np.sort(traded_k[(traded_k != NONE) & (traded_k <= t_as_of)])
    known_at = np.searchsorted(sorted_first, end_secs, side="left")
    traded_at = np.searchsorted(traded_times, end_secs, side="left")
    # identified-but-not-yet-seen victims are counted as identified only once known
    both = np.sort(np.maximum(first_k[is_ident], ident_k[is_ident]))
    ident_known_at = np.searchsorted(both, end_secs, side="left")
    unid_at = known_at - ident_known_at
    base_dt = baseline or starts[0]
    base_k = int(np.searchsorted(start_secs, _sec(base_dt), side="right")) - 1
    if base_k < 0:
        raise BadInput("the baseline is before the first period with any victim")
    base_value = int(unid_at[base_k])
    rows: list[PeriodRow] = []
    prev_known = prev_ident = 0
    for k, s in enumerate(starts):
        known = int(known_at[k])
        rows.append(
            PeriodRow(
                period=_label(s, period),
                start=_iso(start_secs[k]),
                end=_iso(end_secs[k]),
                known=known,
                new_victims=known - prev_known,
                identifications=int(ident_known_at[k]) - prev_ident,
                identified=int(ident_known_at[k]),
                unidentified=int(unid_at[k]),
                identified_share=int(ident_known_at[k]) / known if known else None,
                actively_traded=int(traded_at[k]),
                index=100.0 * int(unid_at[k]) / base_value if base_value else None,
            )
        )
        prev_known, prev_ident = known, int(ident_known_at[k])
    # survival
    end_t = np.where(is_ident, ident_k, t_as_of)
    durations = np.maximum(end_t - first_k, 0) / DAY
    events = is_ident.astype(int)
    overall, _ = _km(durations, events, "all")
    strata: list[Survival] = []
    lr = None
    if by is not None:
        labels = getattr(table, by)[known_mask]
        values = sorted(set(labels.tolist()))
        for value in values:
            mask = labels == value
            strata.append(_km(durations[mask], events[mask], str(value))[0])
        if len(values) >= 2:
            stat, dof, p_value = logrank_test(durations, labels, events)
            lr = LogRank(by, stat, dof, p_value)
    n_ident = int(is_ident.sum())
    estimate, note = _estimate(table, known_mask, t_as_of, n_ident)
    present = (table.db_first >= 0) & (table.db_first <= t_as_of)
    return Indicator(
        as_of=_iso(t_as_of),
        baseline=rows[base_k].period,
        period=period,
        by=by,
        known=int(known_mask.sum()),
        identified=n_ident,
        unidentified=int(known_mask.sum()) - n_ident,
        identified_share=n_ident / int(known_mask.sum()),
        actively_traded=len(traded_times),
        by_database={d: int(present[i].sum()) for i, d in enumerate(table.databases)},
        periods=rows,
        survival=overall,
        strata=strata,
        logrank=lr,
        estimate=estimate,
        estimate_note=note,
    )


def _iso_dt(seconds: int) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=seconds)


def survival_curves(
    table: VictimTable, as_of: dt.datetime, by: str | None
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(stratum, days, S, low, high) per stratum, for the charts."""
    t_as_of = _sec(as_of)
    seen = np.where(
        (table.db_first >= 0) & (table.db_first <= t_as_of), table.db_first, np.iinfo(np.int64).max
    )
    first = seen.min(axis=0)
    mask = first <= t_as_of
    ident = table.identified[mask]
    is_ident = (ident != NONE) & (ident <= t_as_of)
    durations = np.maximum(np.where(is_ident, ident, t_as_of) - first[mask], 0) / DAY
    labels = getattr(table, by)[mask] if by else np.full(int(mask.sum()), "all", dtype=object)
    out = []
    for value in sorted(set(labels.tolist())):
        m = labels == value
        km = KaplanMeier.fit(durations[m], is_ident[m])
        out.append((str(value), km.timeline, km.survival, km.lower, km.upper))
    return out

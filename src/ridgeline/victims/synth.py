"""Synthetic victims with known ground truth, for tests, the demo and the benchmark.

A closed population of `n` victims surfaces over the years; each database holds each
victim independently with its own known capture probability. Time from first seen to
identification is exponential with a known median per age band, so the Kaplan-Meier
median, the index and the population estimate can all be checked against the truth.
No names, no images: ids are made up, hashes are random bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ridgeline.victims.records import Record

DAY = 86_400
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
BANDS = ("infant-toddler", "prepubescent", "pubescent")
BAND_P = (0.15, 0.5, 0.35)
#: true median days from first seen to identification, by age band
MEDIAN_DAYS = {"infant-toddler": 3 * 365.0, "prepubescent": 2 * 365.0, "pubescent": 365.0}
GENDERS = ("female", "male", "unknown")
REGIONS = ("US", "DE", "GB", "PH", "BR", "unknown")
AGENCIES = ("FBI", "BKA", "NCA", "AFP", "RCMP")
DEFAULT_DATABASES = (("NCMEC", 0.5), ("ICSE", 0.4), ("EUROPOL", 0.3))


@dataclass(frozen=True)
class Synth:
    """The generated world: per-victim truth arrays and the databases' records."""

    seed: int
    n: int
    databases: tuple[tuple[str, float], ...]
    start: dt.datetime
    end: dt.datetime
    band: np.ndarray  # index into BANDS
    gender: np.ndarray
    region: np.ndarray
    #: captured[d, i]: database d holds victim i
    captured: np.ndarray
    #: database first-seen times (UTC seconds), -1 where not captured
    db_first: np.ndarray
    #: identification time (UTC seconds) of each victim, -1 if not by `end`
    identified: np.ndarray
    agency: np.ndarray
    hashes: np.ndarray  # (n, 3) uint64 seeds of each victim's three files
    #: sightings[d]: (victim index, time) arrays of database d
    sightings: tuple[tuple[np.ndarray, np.ndarray], ...] = field(repr=False)

    @property
    def known(self) -> np.ndarray:
        """Victims at least one database holds."""
        return np.asarray(self.captured.any(axis=0))

    @property
    def merged_first(self) -> np.ndarray:
        """Earliest first-seen over the databases (UTC seconds), for held victims."""
        first = np.where(self.db_first >= 0, self.db_first, np.iinfo(np.int64).max)
        return np.asarray(first.min(axis=0))

    def records(self) -> Iterator[Record]:
        """Each database's records: hashes shared across databases, else a same_as."""
        for rec in self.json_records():
            from ridgeline.victims.records import parse_record

            yield parse_record(rec)

    def json_records(self) -> Iterator[dict[str, object]]:
        """The records as `victims.jsonl` objects, database by database."""
        rng = np.random.default_rng(self.seed + 1)
        names = [d for d, _ in self.databases]
        by_db_sight: list[dict[int, list[int]]] = []
        for victims, times in self.sightings:
            table: dict[int, list[int]] = {}
            for v, t in zip(victims.tolist(), times.tolist(), strict=True):
                table.setdefault(v, []).append(t)
            by_db_sight.append(table)
        pick = rng.random((len(names), self.n, 3)) < 0.6

        def chosen(d: int, i: int) -> set[int]:
            return {k for k in range(3) if pick[d, i, k]} or {d % 3}

        for d, name in enumerate(names):
            for i in np.flatnonzero(self.captured[d]).tolist():
                mine = chosen(d, i)
                earlier = [e for e in range(d) if self.captured[e, i]]
                same_as = []
                if earlier and not any(mine & chosen(e, i) for e in earlier):
                    same_as = [
                        {"database": names[earlier[0]], "victim_id": _vid(names[earlier[0]], i)}
                    ]
                ident = int(self.identified[i])
                yield {
                    "database": name,
                    "victim_id": _vid(name, i),
                    "series": [f"{name}-S{i:07d}"],
                    "first_seen": _iso(int(self.db_first[d, i])),
                    "identified_at": _iso(ident) if ident >= 0 else None,
                    "identifying_agency": AGENCIES[int(self.agency[i])] if ident >= 0 else None,
                    "age_band": BANDS[int(self.band[i])],
                    "gender": GENDERS[int(self.gender[i])],
                    "region": REGIONS[int(self.region[i])],
                    "hashes": [
                        {"signal": "sha256", "value": _hash(int(self.hashes[i, k]), i, k)}
                        for k in sorted(mine)
                    ],
                    "same_as": same_as,
                    "sightings": [_iso(t) for t in by_db_sight[d].get(i, [])],
                }

    def write(self, directory: Path) -> list[Path]:
        """One `<database>.jsonl` per database; returns the paths."""
        directory.mkdir(parents=True, exist_ok=True)
        handles = {
            d: (directory / f"{d}.jsonl").open("w", encoding="utf-8") for d, _ in self.databases
        }
        try:
            for rec in self.json_records():
                handles[str(rec["database"])].write(json.dumps(rec, separators=(",", ":")) + "\n")
        finally:
            for h in handles.values():
                h.close()
        return [directory / f"{d}.jsonl" for d, _ in self.databases]


def _vid(db: str, i: int) -> str:
    return f"{db[:2]}-{(i * 2654435761) % 4294967296:010d}"


def _hash(seed: int, i: int, k: int) -> str:
    import hashlib

    return hashlib.sha256(f"{seed}:{i}:{k}".encode()).hexdigest()


def _iso(seconds: int) -> str:
    return (EPOCH + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def generate(
    seed: int,
    n: int = 1000,
    databases: tuple[tuple[str, float], ...] = DEFAULT_DATABASES,
    start: dt.datetime = dt.datetime(2015, 1, 1, tzinfo=dt.UTC),
    end: dt.datetime = dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    sightings_per_record: float = 3.0,
) -> Synth:
    """A seeded world of `n` victims (including those no database holds)."""
    rng = np.random.default_rng(seed)
    s0 = int((start - EPOCH).total_seconds())
    s1 = int((end - EPOCH).total_seconds())
    band = rng.choice(len(BANDS), size=n, p=BAND_P)
    gender = rng.choice(len(GENDERS), size=n, p=(0.6, 0.35, 0.05))
    region = rng.choice(len(REGIONS), size=n)
    surfaced = rng.integers(s0, s1 - 30 * DAY, size=n)
    k = len(databases)
    captured = rng.random((k, n)) < np.array([p for _, p in databases])[:, None]
    delay = (rng.exponential(60.0, size=(k, n)) * DAY).astype(np.int64)
    db_first = np.where(captured, np.minimum(surfaced + delay, s1 - 1), -1)
    first = np.where(captured, db_first, np.iinfo(np.int64).max).min(axis=0)
    medians = np.array([MEDIAN_DAYS[b] for b in BANDS])[band]
    ident_delay = (rng.exponential(medians / math.log(2)) * DAY).astype(np.int64)
    held = captured.any(axis=0)
    ident_time = np.where(held, first + ident_delay, -1)
    identified = np.where(held & (ident_time <= s1), ident_time, -1)
    agency = rng.integers(0, len(AGENCIES), size=n)
    hashes = rng.integers(0, 2**62, size=(n, 3), dtype=np.int64)
    sightings = []
    for d in range(k):
        held_d = np.flatnonzero(captured[d])
        counts = rng.poisson(sightings_per_record, size=len(held_d))
        victims = np.repeat(held_d, counts)
        lo = db_first[d, victims]
        times = lo + (rng.random(len(victims)) * (s1 - lo)).astype(np.int64)
        sightings.append((victims, times))
    return Synth(
        seed=seed,
        n=n,
        databases=tuple(databases),
        start=start,
        end=end,
        band=band,
        gender=gender,
        region=region,
        captured=captured,
        db_first=db_first,
        identified=identified,
        agency=agency,
        hashes=hashes,
        sightings=tuple(sightings),
    )

"""Merging records of several databases into victims: shared hashes and `same_as`, transitively.

Union-find over record indices (networkx's connected components give the same sets, at
several times the memory for a million records). The store hands over only the hashes
that two or more records hold (grouped in SQL) and the `same_as` links already resolved
to a record, so nothing keyed by hash or victim id is built in Python. Every union that
joined two different victims is kept as a `Join`: the merge report says what was merged and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Join:
    """Records `a` and `b` (indices) were found to be the same victim."""

    a: int
    b: int
    reason: str  # hash | same_as
    detail: str


@dataclass(frozen=True)
class MergeResult:
    """`component[i]`: the merged victim (0..count-1) of record i."""

    component: np.ndarray
    count: int
    joins: tuple[Join, ...]


def merge_records(
    databases: list[str],
    keys: dict[tuple[str, str], int],
    hashes: Iterable[tuple[int, str, str]],
    links: Iterable[tuple[int, str, str]],
) -> MergeResult:
    """Components of the "same victim" graph over records.

    `databases[i]` is record i's database, `keys` maps (database, victim_id) to the
    record index, `hashes` yields (record, signal, value), `links` (record, database,
    victim_id). A hash held by records of two or more databases joins all its holders;
    one held in a single database only joins nothing (a file can show two children,
    and that database's own ids already tell them apart). A `same_as` to a record
    that is not here stays an id in another database.
    """
    holders: dict[tuple[str, str], list[int]] = {}
    for record, signal, value in hashes:
        holders.setdefault((signal, value), []).append(record)
    codes: dict[str, int] = {}
    db = np.array([codes.setdefault(d, len(codes)) for d in databases], dtype=np.int64)
    pairs = []
    for record, d, victim_id in links:
        target = keys.get((d, victim_id))
        if target is not None:
            pairs.append((record, target, d, victim_id))
    groups = ((s, v, sorted(set(r))) for (s, v), r in sorted(holders.items()) if len(r) > 1)
    return merge_components(db, groups, pairs)


def merge_components(
    db: np.ndarray,
    hash_groups: Iterable[tuple[str, str, list[int]]],
    links: Iterable[tuple[int, int, str, str]],
) -> MergeResult:
    """`merge_records` on what the store hands over: `db[i]` is record i's database
    code, `hash_groups` yields (signal, value, records holding it) for hashes held by
    two or more records, `links` (record, linked record, database, victim_id) for
    `same_as` links whose target is here. Union-find on a flat list: a million records
    is a few seconds, without a graph object per record."""
    n = len(db)
    parent = list(range(n))
    dbs = db.tolist()

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    joins: list[Join] = []

    def union(a: int, b: int, reason: str, detail: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
            joins.append(Join(a, b, reason, detail))

    for signal, value, records in hash_groups:
        first_db = dbs[records[0]]
        if all(dbs[r] == first_db for r in records):
            continue  # held in one database only: joins nothing
        for other in records[1:]:
            union(records[0], other, "hash", f"{signal}:{value}")
    for record, target, d, victim_id in links:
        if target != record:
            union(record, target, "same_as", f"{d}/{victim_id}")
    roots = np.fromiter((find(i) for i in range(n)), dtype=np.int64, count=n)
    uniq, component = np.unique(roots, return_inverse=True)
    return MergeResult(component=component.astype(np.int64), count=len(uniq), joins=tuple(joins))


def occasions(
    component: np.ndarray, record_of_time: np.ndarray, times: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct occasions per merged victim, and the time of its fifth (-1 if fewer).

    `times` (UTC seconds) belong to records `record_of_time`: every first_seen and
    sighting. The same time in two records of one victim counts once.
    """
    groups = component[record_of_time].astype(np.int64)
    pairs = np.unique(groups * (1 << 33) + times.astype(np.int64))
    g = pairs >> 33
    t = pairs & ((1 << 33) - 1)
    counts = np.bincount(g, minlength=count)
    fifth = np.full(count, -1, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has5 = counts >= 5
    fifth[has5] = t[starts[has5] + 4]
    return counts, fifth

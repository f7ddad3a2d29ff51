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


#: PDQ hashes this close (CONVENTIONS' default threshold) show the same picture
PDQ_RADIUS = 31


def near_pdq(values: list[str], db: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j), i < j, of PDQ hashes (canonical hex) held in different databases
    (`db[i]`) that are within `PDQ_RADIUS` bits but not equal (equal ones merge as exact
    hashes), with their distance; the matching index's multi-index hashing finds them."""
    from ridgeline.index.hamming import HammingIndex, hex_to_rows

    empty = np.empty(0, dtype=np.int64)
    if len(values) < 2:
        return empty, empty, empty
    rows = hex_to_rows(values)
    hits = HammingIndex.build(rows, radius=PDQ_RADIUS).search(rows, PDQ_RADIUS)
    q, r = hits.query.astype(np.int64), hits.row.astype(np.int64)
    keep = (q < r) & (hits.distance > 0) & (db[q] != db[r])
    return q[keep], r[keep], hits.distance[keep].astype(np.int64)


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
    pdq = sorted((v, r) for (s, v), rs in holders.items() if s == "pdq" for r in set(rs))
    values = [v for v, _ in pdq]
    owners = np.array([r for _, r in pdq], dtype=np.int64)
    i, j, dist = near_pdq(values, db[owners] if len(owners) else np.empty(0, np.int64))
    near = [
        (int(owners[a]), int(owners[b]), f"pdq:{values[a]}~{values[b]} ({k} bits)")
        for a, b, k in zip(i.tolist(), j.tolist(), dist.tolist(), strict=True)
    ]
    return merge_components(db, groups, pairs, near)


def components(n: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Connected components of n records joined by edges (a[k], b[k]) taken in order.

    Returns each record's component (numbered by its lowest record, as a union-find that
    keeps the lower root would), how many there are, and the indices of the edges that
    joined two different components, in order: Kruskal's algorithm with the edge's
    position as its weight is that sequential union-find, done in C by scipy.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    real = np.flatnonzero(a != b)
    if n == 0:
        return np.empty(0, dtype=np.int64), 0, np.empty(0, dtype=np.int64)
    if len(real) == 0:
        return np.arange(n, dtype=np.int64), n, np.empty(0, dtype=np.int64)
    lo, hi = np.minimum(a[real], b[real]), np.maximum(a[real], b[real])
    # one edge per pair: its first occurrence (the lowest weight) is the one that counts
    _, first = np.unique(lo * n + hi, return_index=True)
    edge = real[first]
    weight = (edge + 1).astype(np.float64)
    graph = csr_matrix((weight, (lo[first], hi[first])), shape=(n, n))
    tree = minimum_spanning_tree(graph).tocoo()
    joined = np.sort(tree.data.astype(np.int64) - 1)
    count, labels = connected_components(graph, directed=False)
    # number components by their lowest record
    lowest = np.full(count, n, dtype=np.int64)
    np.minimum.at(lowest, labels, np.arange(n))
    rank = np.empty(count, dtype=np.int64)
    rank[np.argsort(lowest, kind="stable")] = np.arange(count)
    return rank[labels], int(count), joined


def merge_components(
    db: np.ndarray,
    hash_groups: Iterable[tuple[str, str, list[int]]],
    links: Iterable[tuple[int, int, str, str]],
    near: Iterable[tuple[int, int, str]] = (),
) -> MergeResult:
    """`merge_records` on what the store hands over: `db[i]` is record i's database
    code, `hash_groups` yields (signal, value, records holding it) for hashes held by
    two or more records, `links` (record, linked record, database, victim_id) for
    `same_as` links whose target is here, `near` (record, record, reason) for PDQ
    hashes within the threshold. Equal hashes join first, then near ones, then links."""
    dbs = db.tolist()
    ea: list[int] = []
    eb: list[int] = []
    why: list[tuple[str, str]] = []
    for signal, value, records in hash_groups:
        first_db = dbs[records[0]]
        if all(dbs[r] == first_db for r in records):
            continue  # held in one database only: joins nothing
        for other in records[1:]:
            ea.append(records[0])
            eb.append(other)
            why.append(("hash", f"{signal}:{value}"))
    for a, b, detail in near:  # near PDQ hashes: after the equal ones
        ea.append(a)
        eb.append(b)
        why.append(("hash", detail))
    for record, target, d, victim_id in links:
        ea.append(record)
        eb.append(target)
        why.append(("same_as", f"{d}/{victim_id}"))
    component, count, joined = components(len(dbs), np.array(ea), np.array(eb))
    joins = tuple(Join(ea[k], eb[k], *why[k]) for k in joined.tolist())
    return MergeResult(component=component, count=count, joins=joins)


def occasions(
    component: np.ndarray, record_of_time: np.ndarray, times: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct occasions per merged victim, and the time of its fifth (-1 if fewer).

    `times` (UTC seconds) belong to records `record_of_time`: every first_seen and
    sighting. The same time in two records of one victim counts once.
    """
    groups = component[record_of_time].astype(np.int64)
    pairs = np.sort(groups * (1 << 33) + times.astype(np.int64))
    if len(pairs):  # distinct (victim, time) pairs (a sort is faster than unique's hash)
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]
    g = pairs >> 33
    t = pairs & ((1 << 33) - 1)
    counts = np.bincount(g, minlength=count)
    fifth = np.full(count, -1, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has5 = counts >= 5
    fifth[has5] = t[starts[has5] + 4]
    return counts, fifth

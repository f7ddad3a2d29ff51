"""`cases.linking.PdqNeighbours`, the in-memory PDQ search of intake's linker: kept as
arrays (no per-hash Python objects), it must find exactly the neighbours a brute-force
comparison finds, across tail rebuilds, with the stored hash as stored, and read each
stored row once however batches and refreshes interleave."""

from __future__ import annotations

import random

from sqlalchemy import select

from ridgeline import intake
from ridgeline.cases.linking import PdqNeighbours
from ridgeline.cases.models import FileBundle
from ridgeline.intake import synthetic
from ridgeline.reports.models import ReportIdentifier
from ridgeline.store import Store


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _brute(stored: list[tuple[int, str]], query: str, radius: int) -> list[tuple[int, str]]:
    return sorted((rid, v) for rid, v in stored if _distance(v, query) <= radius)


def test_search_matches_brute_force_across_rebuilds() -> None:
    """Thousands of hashes in batches (the tail is rebuilt into the MIH index several
    times), near copies among them: every search equals the brute-force answer."""
    rng = random.Random(5)
    originals = [format(rng.getrandbits(256), "064x") for _ in range(40)]
    pdq = PdqNeighbours()
    stored: list[tuple[int, str]] = []
    rid = 0
    for _batch in range(14):
        items = []
        for _ in range(700):
            rid += 1
            if rng.random() < 0.2:  # a near copy of one of the originals
                bits = rng.sample(range(256), rng.randint(0, 20))
                value = int(rng.choice(originals), 16)
                for b in bits:
                    value ^= 1 << b
                items.append((rid, format(value, "064x")))
            else:
                items.append((rid, format(rng.getrandbits(256), "064x")))
        pdq.add(items)
        stored += items
        queries = [originals[0], items[0][1], format(rng.getrandbits(256), "064x")]
        for query, hits in zip(queries, pdq.search(queries, 31), strict=True):
            assert sorted(hits) == _brute(stored, query, 31)
    assert len(pdq) == len(stored) and len(pdq.base) > 4096  # rebuilt at least once
    assert pdq.pending  # the last batch's reports, until the next refresh
    # what it holds: at least each hash's 32 bytes and report id, and no more than a
    # few hundred bytes a hash (bench/intake_million.py shows it beside the RSS)
    assert 40 * len(pdq) <= pdq.nbytes <= 400 * len(pdq)


def test_a_value_not_in_canonical_form_comes_back_as_stored() -> None:
    """Values are recomputed from the rows only when that gives back the stored text."""
    pdq = PdqNeighbours()
    upper = "AB" * 32
    pdq.add([(1, upper), (2, "ab" * 32)])
    assert sorted(pdq.search(["ab" * 32], 0)[0]) == [(1, upper), (2, "ab" * 32)]
    pdq.add([(n, format(n, "064x")) for n in range(3, 5000)])  # rebuilt: still as stored
    assert sorted(pdq.search(["ab" * 32], 0)[0]) == [(1, upper), (2, "ab" * 32)]


def test_refreshed_from_the_store_equals_the_one_intake_built(store: Store) -> None:
    """The linker's index, built batch by batch (`add`, `refresh` skipping the batch's
    own rows), holds each stored PDQ row once: the same as a fresh one read from the
    store in one `refresh`, and both find the same neighbours."""
    pop = synthetic.Population(reports=900, memes=2, meme_share=0.05, pdq_share=0.6)
    lines = list(synthetic.jsonl_lines(pop))
    p = intake.Pipeline()
    for start in range(0, len(lines), 150):
        items = [
            intake.Incoming(f"s:{n}", line, "json")
            for n, line in enumerate(lines[start : start + 150], start)
        ]
        with store.session() as s:
            assert {o.status for o in p.ingest(s, items)} == {"stored"}
    built = p.linker.pdq
    fresh = PdqNeighbours()
    with store.session() as s:
        fresh.refresh(s, exclude=set())
        built.refresh(s, exclude=set())  # nothing new: nothing read twice
        values = list(
            s.execute(
                select(ReportIdentifier.value).where(ReportIdentifier.kind == "pdq").limit(60)
            ).scalars()
        )
        bundled = set(s.execute(select(FileBundle.value).where(FileBundle.kind == "pdq")).scalars())
    assert values and len(fresh) > 100
    # the linker's index leaves out the PDQs of viral files (they link nothing)
    assert len(built) <= len(fresh)
    for a, b in zip(built.search(values, 31), fresh.search(values, 31), strict=True):
        assert len(a) == len(set(a))
        assert set(a) <= set(b)
        assert {v for _, v in set(b) - set(a)} <= bundled

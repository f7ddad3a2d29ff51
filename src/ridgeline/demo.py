"""The demo behind `make demo`: a small list of benign generated images, edited copies
and unrelated images, hashed and matched end to end on the embedded SQLite store.

All images are made here from code (gradients, shapes, noise): nothing is fetched.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from sqlalchemy import select

SIZE = (640, 480)


def scene(seed: int, size: tuple[int, int] = SIZE) -> Image.Image:
    """A benign synthetic 'photo': a sky-like gradient with random shapes and mild noise."""
    rng = random.Random(seed)
    w, h = size
    y = np.linspace(0.0, 1.0, h)[:, None]
    x = np.linspace(0.0, 1.0, w)[None, :]
    top = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float64)
    bottom = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float64)
    tilt = rng.uniform(-0.5, 0.5)
    t = np.clip(y + tilt * (x - 0.5), 0, 1)[..., None]
    base = top * (1 - t) + bottom * t
    img = Image.fromarray(base.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(18, 30)):
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        x0, y0 = rng.randint(-50, w), rng.randint(-50, h)
        x1, y1 = x0 + rng.randint(20, w // 3), y0 + rng.randint(20, h // 3)
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(0.8))
    noise = np.random.default_rng(seed).normal(0, 4, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8), "RGB")


@dataclass(frozen=True)
class DemoFile:
    """A file the demo scans and whether it should match the list."""

    path: Path
    edit: str
    original: str | None


def make_media(
    workdir: Path, known: int = 6, unrelated: int = 4
) -> tuple[list[Path], list[DemoFile]]:
    """Write the 'known' originals and an incoming folder of edits and unrelated images."""
    if workdir.exists():
        shutil.rmtree(workdir)
    originals_dir = workdir / "known"
    incoming = workdir / "incoming"
    originals_dir.mkdir(parents=True)
    incoming.mkdir()
    originals: list[Path] = []
    files: list[DemoFile] = []
    edits = ["resized", "reencoded", "flipped"]
    for i in range(known):
        img = scene(1000 + i)
        path = originals_dir / f"known-{i}.png"
        img.save(path)
        originals.append(path)
        edit = edits[i % len(edits)]
        if edit == "resized":
            out = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
            target = incoming / f"photo-{i}-small.png"
            out.save(target)
        elif edit == "reencoded":
            target = incoming / f"photo-{i}.jpg"
            img.save(target, quality=60)
        else:
            target = incoming / f"photo-{i}-mirror.png"
            ImageOps.mirror(img).save(target)
        files.append(DemoFile(target, edit, path.name))
    for j in range(unrelated):
        target = incoming / f"holiday-{j}.jpg"
        scene(5000 + j).save(target, quality=85)
        files.append(DemoFile(target, "unrelated", None))
    return originals, files


@dataclass(frozen=True)
class DemoRow:
    """One incoming file: what was done to it, what we expected, what matched."""

    file: str
    edit: str
    expected: str
    matched: str
    distance: int | None
    variant: str | None
    #: what the match says about the victim series of the entry, if it has one
    identification: str | None = None

    @property
    def correct(self) -> bool:
        return (self.expected == "match") == (self.matched != "-")


@dataclass(frozen=True)
class VictimsDemo:
    """The victims part of the demo: the synthetic registry, and the indicator on it."""

    records: int
    victims: int
    indicator: Any  # ridgeline.indicator.Indicator
    charts: list[Path]


#: The synthetic world of the demo's registry (victims.synth: no names, no images).
VICTIMS_SEED, VICTIMS_N = 14, 600


def _victims_registry(store: Any, entry_ids: list[int]) -> tuple[int, int]:
    """Import a small synthetic registry and link the first entry to an identified
    victim's series, the second to one whose victim is not identified."""
    from ridgeline.victims.registry import import_records, link_series
    from ridgeline.victims.synth import generate

    world = generate(VICTIMS_SEED, VICTIMS_N)
    lines = [json.dumps(r) for r in world.json_records()]
    result = import_records(store, [("demo-victims", lines)])
    records = [json.loads(x) for x in lines]
    identified = next(r for r in records if r["identified_at"])
    unidentified = next(r for r in records if not r["identified_at"])
    for entry_id, rec in zip(entry_ids, (identified, unidentified), strict=False):
        series = rec["series"]
        assert isinstance(series, list)
        link_series(store, str(rec["database"]), str(series[0]), by="demo", entry_id=entry_id)
    return result.records, result.victims


def _indicator(store: Any, workdir: Path, records: int, victims: int) -> VictimsDemo:
    import datetime as dt

    from ridgeline.indicator import compute, load_table
    from ridgeline.indicator.charts import write_charts

    table = load_table(store)
    result = compute(table, as_of=dt.datetime(2025, 1, 1, tzinfo=dt.UTC), by="age_band")
    charts = write_charts(result, table, workdir / "indicator")
    return VictimsDemo(records, victims, result, charts)


def run_demo(
    workdir: Path, db: str | None = None
) -> tuple[dict[str, Any], list[DemoRow], VictimsDemo]:
    """Build lists (one through multi-review), hash the incoming folder and match it;
    then the victims registry: matches say identified or not, and the indicator."""
    from ridgeline import lists as L
    from ridgeline.exchange import import_bytes
    from ridgeline.hashing import hash_file
    from ridgeline.lists.models import Entry
    from ridgeline.matching import Matcher, queries_for
    from ridgeline.review.demo import build_reviewed_list
    from ridgeline.signals import HashOptions
    from ridgeline.signals.pdq import pdq_frames
    from ridgeline.store import Store
    from ridgeline.victims.annotate import SeriesAnnotator

    originals, files = make_media(workdir)
    store = Store.open(db or workdir / "ridgeline.db")
    known = [hash_file(p, ["md5", "pdq"]) for p in originals]
    pdq_of = {id(k): pdq_frames(k.signals["pdq"])[0]["hash"] for k in known}
    with store.session() as session:
        # Four images go through three independent reviewers (K=3): see review.demo.
        review = build_reviewed_list(
            session,
            "demo-reviewed",
            hashes=[{"pdq": pdq_of[id(k)], "md5": str(k.signals["md5"])} for k in known[:4]],
        )
        # The rest arrive as an import into a list with no review policy: matchable at once.
        imported = L.create_list(session, "demo-imported", thresholds={"pdq": 31})
        lines = "\n".join(pdq_of[id(k)] for k in known[4:])
        import_bytes(session, imported, lines.encode(), "txt", signal="pdq", actor="demo")
    status_by_pdq = {}
    with store.session() as session:
        for item, k in zip(review["entries"], known[:4], strict=True):
            status_by_pdq[pdq_of[id(k)]] = item["status"]
    expected_by_original = {
        p.name: "match" if status_by_pdq.get(pdq_of[id(k)], "confirmed") == "confirmed"
        else "no match (rejected in review)"
        for p, k in zip(originals, known, strict=True)
    }  # fmt: skip
    with store.session() as session:
        imported_ids = list(
            session.scalars(select(Entry.id).where(Entry.list_id == imported.id).order_by(Entry.id))
        )
    victim_records, victims = _victims_registry(store, imported_ids)
    matcher = Matcher.open(store, str(workdir / "index"))
    annotator = SeriesAnnotator(store, background=False)
    matcher.annotator = annotator
    rows: list[DemoRow] = []
    options = HashOptions(dihedral=True)
    results = [hash_file(f.path, ["pdq"], options) for f in files]
    found = matcher.match_each([queries_for(r.signals, dihedral=True) for r in results])
    for f, matches in zip(files, found, strict=True):
        expected = expected_by_original[f.original] if f.original else "no match"
        best = min(matches, key=lambda m: m.distance) if matches else None
        rows.append(
            DemoRow(
                file=f.path.name,
                edit=f.edit,
                expected="match" if expected == "match" else expected,
                matched=f"{best.list_name}#{best.entry_id}" if best else "-",
                distance=int(best.distance) if best else None,
                variant=(best.variant or "orig") if best else None,
                identification=best.identification if best else None,
            )
        )
    annotator.close()
    matcher.close()
    victims_demo = _indicator(store, workdir, victim_records, victims)
    store.close()
    return review, rows, victims_demo

"""One match type on every path: `ridgeline match`, `scan --output` and `/v1/match` agree,
and a file is matched on every signal it has (benign images and video made in code)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from ridgeline import lists as L
from ridgeline.cli import main
from ridgeline.hashing import hash_file
from ridgeline.matching import ExplainedMatch
from ridgeline.service.app import ServiceConfig, create_app
from ridgeline.service.keys import create_key
from ridgeline.service.match_models import HashesMatchOut, LookupOut, MatchOut, UploadMatchOut
from ridgeline.service.schemas import HashOut
from ridgeline.signals import get_signal
from ridgeline.store import Store


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def match_file(db: str, list_name: str, path: Path) -> tuple[int, str, str]:
    return run("match", "--list", list_name, "--db", db, "--format", "jsonl", str(path))


def rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def benign_image(path: Path, seed: int = 1) -> None:
    """Smoothly upscaled random colour blocks: benign, made in code, high PDQ quality."""
    small = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    Image.fromarray(small).resize((128, 128), Image.Resampling.BICUBIC).save(path)


def benign_video(path: Path) -> None:
    """Two seconds of generated colour blocks."""
    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for i in range(20):
            small = np.random.default_rng(100 + i // 10).integers(0, 256, (6, 8, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((128, 96), Image.Resampling.BICUBIC)
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def corrupt_jpeg(path: Path) -> None:
    """A JPEG header followed by bytes that do not decode."""
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8)


def add(db: str, list_name: str, signals: dict[str, str], **kw: Any) -> int:
    store = Store.open(db)
    try:
        with store.session() as s:
            try:
                hl = L.get_list(s, list_name)
            except Exception:
                hl = L.create_list(s, list_name)
            return L.add_entry(s, hl, signals, **kw).id
    finally:
        store.close()


def api_match(db: str, tmp_path: Path, path: Path, **form: str) -> tuple[int, dict[str, Any]]:
    """POST the file to /v1/match of a real app over the same database."""
    store = Store.open(db)
    try:
        with store.session() as s:
            _, key = create_key(s, f"p-{path.name}-{len(form)}", "provider", rate_limit=1000)
        config = ServiceConfig(index_dir=str(tmp_path / "api-index"))
        with TestClient(create_app(config, store)) as client:
            res = client.post(
                "/v1/match",
                files={"file": (path.name, path.read_bytes())},
                data=form,
                headers={"X-API-Key": key},
            )
            return res.status_code, res.json()
    finally:
        store.close()


def test_match_scan_and_api_give_the_same_matches(db_path: str, tmp_path: Path) -> None:
    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    benign_image(photo)
    computed = hash_file(photo)
    pdq = get_signal("pdq").canonical_values(computed.signals["pdq"])[0]
    add(
        db_path,
        "known",
        {"md5": str(computed.signals["md5"])},
        classifications=[{"scheme": "industry", "label": "A2"}],
        source="unit-test",
    )
    add(db_path, "known", {"pdq": pdq}, qualities={"pdq": 90}, source="other")

    code, out, err = match_file(db_path, "known", photo)
    assert code == 0, err
    (cli_row,) = rows(out)
    report = tmp_path / "scan.jsonl"
    code, _, err = run(
        "scan", str(photo.parent), "--list", "known", "--db", db_path,
        "--output", str(report), "--format", "jsonl", "--index-dir", str(tmp_path / "idx2"),
    )  # fmt: skip
    assert code == 0, err
    (scan_row,) = rows(report.read_text())
    status, api = api_match(db_path, tmp_path, photo, lists="known")
    assert status == 200, api

    cli, scan, served = cli_row["matches"], scan_row["matches"], api["matches"]
    assert [m["signal"] for m in cli] == ["md5", "pdq"]  # every signal the file has
    assert cli == scan == served
    md5 = cli[0]
    assert set(md5) == {
        "list", "list_id", "purpose", "entry_id", "signal", "value", "variant", "distance",
        "threshold", "classifications", "provenance", "held",
    }  # fmt: skip
    assert md5["classifications"] == [{"scheme": "industry", "label": "A2"}]
    assert md5["provenance"]["source"] == "unit-test" and md5["distance"] == 0
    assert ExplainedMatch.from_json(md5).to_json() == md5


def test_a_file_is_matched_on_every_signal_it_has(db_path: str, tmp_path: Path) -> None:
    photo, bad, video = tmp_path / "photo.jpg", tmp_path / "bad.jpg", tmp_path / "clip.mp4"
    Image.open(_png(tmp_path)).convert("RGB").save(photo)
    corrupt_jpeg(bad)
    benign_video(video)
    md5 = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in (photo, bad, video)}
    ids = {p: add(db_path, "known", {"md5": md5[p]}) for p in (photo, bad)}
    clip = hash_file(video)
    assert clip.error is None and "vpdq" in clip.signals
    vpdq = get_signal("vpdq").canonical_values(clip.signals["vpdq"])[0]
    ids[video] = add(db_path, "videos", {"vpdq": vpdq})
    crypto_video = add(db_path, "videos", {"sha256": str(clip.signals["sha256"])})

    # an image whose md5 (not its PDQ) is listed; --signal is for plain hash strings only
    code, out, err = match_file(db_path, "known", photo)
    assert code == 0, err
    (row,) = rows(out)
    assert [(m["signal"], m["entry_id"]) for m in row["matches"]] == [("md5", ids[photo])]
    assert row["error"] is None and "pdq" in row["signals"]

    # a corrupt JPEG: the decode failure is reported beside the md5 match
    code, out, err = match_file(db_path, "known", bad)
    assert code == 0, err
    (row,) = rows(out)
    assert [(m["signal"], m["entry_id"]) for m in row["matches"]] == [("md5", ids[bad])]
    assert row["error"].startswith("pdq:") and "pdq" in err
    status, body = api_match(db_path, tmp_path, bad)
    assert status == 200, body
    assert [(m["signal"], m["entry_id"]) for m in body["matches"]] == [("md5", ids[bad])]
    assert body["error"].startswith("pdq:") and "md5" in body["signals"]

    # a video: its cryptographic hashes and vPDQ, no "pdq: not computable"
    code, out, err = match_file(db_path, "videos", video)
    assert code == 0, err
    (row,) = rows(out)
    assert {(m["signal"], m["entry_id"]) for m in row["matches"]} == {
        ("vpdq", ids[video]),
        ("sha256", crypto_video),
    }
    assert row["error"] is None


def test_hash_jsonl_pipes_into_match(db_path: str, tmp_path: Path) -> None:
    photo, other = tmp_path / "a.png", tmp_path / "b.png"
    benign_image(photo, 3)
    benign_image(other, 4)
    entry = add(db_path, "known", {"sha1": hashlib.sha1(photo.read_bytes()).hexdigest()})
    code, hashed, err = run("hash", "--format", "jsonl", str(photo), str(other))
    assert code == 0, err
    code, out, err = run(
        "match", "--list", "known", "--db", db_path, "--format", "jsonl", "--hashes", "-",
        input=hashed,
    )  # fmt: skip
    assert code == 0, err
    first, second = rows(out)
    assert first["query"] == str(photo) and first["signals"] == rows(hashed)[0]["signals"]
    assert [(m["signal"], m["entry_id"]) for m in first["matches"]] == [("sha1", entry)]
    assert second["query"] == str(other) and second["matches"] == []
    code, hashed_json, err = run("hash", "--format", "json", str(photo))
    assert code == 0, err
    code, out, err = run(
        "match", "--list", "known", "--db", db_path, "--format", "jsonl", "--hashes", "-",
        input=hashed_json,
    )  # fmt: skip
    assert code == 0, err
    assert [m["entry_id"] for m in rows(out)[0]["matches"]] == [entry]
    # plain hash lines still work beside JSON rows
    sha1 = hashlib.sha1(photo.read_bytes()).hexdigest()
    code, out, err = run(
        "match", "--list", "known", "--signal", "sha1", "--db", db_path, "--format", "jsonl",
        "--hashes", "-", input=f"# a comment\n{sha1.upper()}\n",
    )  # fmt: skip
    assert code == 0, err
    assert [m["entry_id"] for m in rows(out)[0]["matches"]] == [entry]


def test_openapi_documents_match_responses(sqlite_store: Store, tmp_path: Path) -> None:
    """The declared response models are in /openapi.json and fit the real answers."""
    photo = tmp_path / "p.png"
    benign_image(photo, 9)
    md5 = hashlib.md5(photo.read_bytes()).hexdigest()
    with sqlite_store.session() as s:
        _, key = create_key(s, "p", "provider", rate_limit=1000)
        L.add_entry(s, L.create_list(s, "known"), {"md5": md5})
    config = ServiceConfig(index_dir=str(tmp_path / "idx"))
    with TestClient(create_app(config, sqlite_store)) as client:
        doc = client.get("/openapi.json").json()
        schemas = doc["components"]["schemas"]
        for path, method in (("/v1/match", "post"), ("/v1/lookup", "get"), ("/v1/hash", "post")):
            ok = doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]
            assert ok["schema"], path
        assert {"list", "entry_id", "signal", "distance", "classifications", "held"} <= set(
            schemas["MatchOut"]["properties"]
        )
        h = {"X-API-Key": key}
        upload = {"file": ("p.png", photo.read_bytes())}
        answers = [
            (
                LookupOut,
                client.get("/v1/lookup", params={"signal": "md5", "value": md5}, headers=h),
            ),
            (HashesMatchOut, client.post("/v1/match", json={"signals": {"md5": md5}}, headers=h)),
            (UploadMatchOut, client.post("/v1/match", files=upload, headers=h)),
            (HashOut, client.post("/v1/hash", files=upload, headers=h)),
        ]
    for model, res in answers:
        assert res.status_code == 200, res.text
        body = res.json()
        assert _dump(model.model_validate(body), body) == body, model
        for match in body.get("matches", []):
            assert _dump(MatchOut.model_validate(match), match) == match
    assert answers[0][1].json()["matches"][0]["signal"] == "md5"


def _dump(model: Any, like: dict[str, Any]) -> dict[str, Any]:
    """The model as JSON, without the optional fields the answer leaves out."""
    out: dict[str, Any] = json.loads(model.model_dump_json(by_alias=True))
    if "matches" in out:
        out["matches"] = [_dump(MatchOut.model_validate(m), m) for m in like["matches"]]
    return {k: v for k, v in out.items() if k in like or v is not None}


def _png(tmp_path: Path) -> Path:
    path = tmp_path / "source.png"
    benign_image(path, 7)
    return path

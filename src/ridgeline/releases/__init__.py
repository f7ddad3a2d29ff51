"""Signed, versioned releases of a list, and pulling them into another database.

A release N of list L is three files:

- `L-vN.snapshot.jsonl.gz`: every listed entry (confirmed, enabled, not deleted), one
  canonical JSON record per line;
- `L-vN.delta.jsonl`: what changed since release N-1 (`upsert` records, `delete` uids);
- `L-vN.manifest.json`: list, version, previous version, time, counts and the sha256
  and size of both files, signed with Ed25519.

`pull_release` checks the signature against a trusted public key, then every file's
hash, and refuses replays and gaps: a delta applies only on top of version N-1; a
snapshot may reset a subscriber to any newer version. It then applies everything in
the caller's transaction, so a refused or failed pull changes nothing.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ridgeline import auditlog, crashpoint
from ridgeline.errors import BadInput, NotFound, RidgelineError
from ridgeline.exchange.apply import apply_records, export_items
from ridgeline.exchange.records import ExchangeRecord, ExportItem, ParseResult
from ridgeline.lists import create_list, delete_entry, get_list
from ridgeline.lists.models import Entry, HashList
from ridgeline.releases.models import PulledRelease, Release
from ridgeline.timeutil import as_utc, isoformat, utcnow

FORMAT = "ridgeline-release/1"


class ReleaseRefused(RidgelineError):
    """A release that fails verification (signature, key, hashes) or comes out of order."""

    code = "release_refused"
    http_status = 400


# --- keys -------------------------------------------------------------------------


def generate_keypair(private_path: Path | str, public_path: Path | str) -> str:
    """Write a new Ed25519 key pair (private key readable by the owner only); its key id."""
    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists():
            raise BadInput(f"{path} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = key.public_key()
    public_path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_id(public)


def key_id(public: Ed25519PublicKey) -> str:
    """sha256 of the raw 32-byte public key, hex: names the key in manifests."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file, or a clear error."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise BadInput(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file, or a clear error."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        raise BadInput(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput(f"{path}: not an Ed25519 public key")
    return key


# --- publishing -------------------------------------------------------------------


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _release_record(item: ExportItem) -> dict[str, Any]:
    return {
        "uid": str(item.entry_id),
        "signals": dict(sorted(item.signals.items())),
        "qualities": dict(sorted(item.qualities.items())),
        "classifications": item.classifications,
        "source": item.source,
        "upstream": {
            "origin_list": item.origin_list,
            "origin_member": item.origin_member,
            "origin_entry_id": item.origin_entry_id,
        },
        "note": item.note,
    }


def _listed(session: Session, hash_list: HashList) -> list[dict[str, Any]]:
    """The entries a release publishes: those that can match now (`lists.matchable_clause`)."""
    return [_release_record(i) for i in export_items(session, hash_list, matchable_at=utcnow())]


@dataclass
class ReleaseResult:
    """Files written by `create_release` and the signed manifest."""

    version: int
    manifest: dict[str, Any]
    files: dict[str, Path]

    def to_json(self) -> dict[str, Any]:
        return {
            "list": self.manifest["list"],
            "version": self.version,
            "previous_version": self.manifest["previous_version"],
            "counts": self.manifest["counts"],
            "files": {k: str(v) for k, v in self.files.items()},
        }


def create_release(
    session: Session,
    hash_list: HashList,
    private_key: Ed25519PrivateKey,
    out_dir: Path | str,
    *,
    actor: str | None = None,
) -> ReleaseResult:
    """Write release N+1 of `hash_list` to `out_dir` and remember it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous = session.scalar(
        select(Release)
        .where(Release.list_id == hash_list.id)
        .order_by(Release.version.desc())
        .limit(1)
    )
    version = 1 if previous is None else previous.version + 1
    records = _listed(session, hash_list)
    digests = {r["uid"]: _sha256(_canonical(r)) for r in records}
    before: dict[str, Any] = dict(previous.digests) if previous is not None else {}
    delta_lines = [
        {"op": "upsert", "record": r} for r in records if before.get(r["uid"]) != digests[r["uid"]]
    ]
    deletes = sorted((uid for uid in before if uid not in digests), key=_uid_order)
    delta_lines += [{"op": "delete", "uid": uid} for uid in deletes]
    snapshot = gzip.compress(b"".join(_canonical(r) + b"\n" for r in records), mtime=0)
    delta = b"".join(_canonical(line) + b"\n" for line in delta_lines)
    stem = f"{_file_stem(hash_list.name)}-v{version}"
    names = {"snapshot": f"{stem}.snapshot.jsonl.gz", "delta": f"{stem}.delta.jsonl"}
    public = private_key.public_key()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "list": hash_list.name,
        "owner": hash_list.owner,
        "purpose": hash_list.purpose,
        "version": version,
        "previous_version": None if previous is None else previous.version,
        "created_at": isoformat(utcnow()),
        "counts": {
            "snapshot": len(records),
            "upserts": len(delta_lines) - len(deletes),
            "deletes": len(deletes),
        },
        "files": {
            "snapshot": {
                "name": names["snapshot"],
                "sha256": _sha256(snapshot),
                "size": len(snapshot),
            },
            "delta": {"name": names["delta"], "sha256": _sha256(delta), "size": len(delta)},
        },
        "key_id": key_id(public),
    }
    signed = {
        "manifest": manifest,
        "algorithm": "ed25519",
        "signature": base64.b64encode(private_key.sign(_canonical(manifest))).decode(),
    }
    paths = {k: out / v for k, v in names.items()}
    paths["manifest"] = out / f"{stem}.manifest.json"
    paths["snapshot"].write_bytes(snapshot)
    paths["delta"].write_bytes(delta)
    paths["manifest"].write_text(json.dumps(signed, indent=2, sort_keys=True) + "\n")
    session.add(
        Release(
            list_id=hash_list.id,
            version=version,
            key_id=manifest["key_id"],
            manifest=manifest,
            digests=digests,
        )
    )
    session.flush()
    auditlog.append(
        session,
        actor,
        "list.release",
        f"list:{hash_list.id}",
        {"version": version, "counts": manifest["counts"], "key_id": manifest["key_id"]},
    )
    return ReleaseResult(version, manifest, paths)


def _uid_order(uid: str) -> tuple[int, str]:
    return (int(uid), "") if uid.isdigit() else (0, uid)


# --- subscribing ------------------------------------------------------------------


@dataclass
class PullResult:
    """What one pull applied."""

    list_name: str
    source_list: str
    applied: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"list": self.list_name, "source_list": self.source_list, "applied": self.applied}


@dataclass
class _Manifest:
    path: Path
    body: dict[str, Any]
    raw_sha256: str

    @property
    def version(self) -> int:
        return int(self.body["version"])


def verify_manifest(path: Path | str, trusted: Ed25519PublicKey) -> dict[str, Any]:
    """The manifest body if its signature verifies with `trusted`, else `ReleaseRefused`."""
    return _read_manifest(Path(path), trusted).body


def _read_manifest(path: Path, trusted: Ed25519PublicKey) -> _Manifest:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror}") from None
    try:
        doc = json.loads(raw)
        body = doc["manifest"]
        signature = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise ReleaseRefused(f"{path}: not a signed release manifest") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ReleaseRefused(f"{path}: unknown manifest format")
    if body.get("key_id") != key_id(trusted):
        raise ReleaseRefused(
            f"{path}: signed with key {str(body.get('key_id'))[:16]}…, not the trusted key "
            f"{key_id(trusted)[:16]}…"
        )
    try:
        trusted.verify(signature, _canonical(body))
    except InvalidSignature:
        raise ReleaseRefused(
            f"{path}: signature does not verify: the manifest was altered"
        ) from None
    if not isinstance(body.get("version"), int) or body["version"] < 1:
        raise ReleaseRefused(f"{path}: bad version")
    return _Manifest(path, body, _sha256(raw))


def _read_part(manifest: _Manifest, part: str) -> bytes:
    info = manifest.body["files"][part]
    name = str(info["name"])
    if "/" in name or "\\" in name or name.startswith("."):
        raise ReleaseRefused(f"{manifest.path}: bad file name {name!r}")
    path = manifest.path.parent / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReleaseRefused(f"{path}: {exc.strerror}") from None
    if len(data) != info["size"] or _sha256(data) != info["sha256"]:
        raise ReleaseRefused(f"{path}: sha256 does not match the signed manifest: file tampered")
    return data


def _lines(data: bytes, what: str) -> list[dict[str, Any]]:
    out = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReleaseRefused(f"{what}:{number}: malformed JSON ({exc.msg})") from None
        out.append(obj)
    return out


def _to_exchange(
    record: dict[str, Any], source_list: str, publisher: str, position: str, deleted: bool = False
) -> ExchangeRecord:
    return ExchangeRecord(
        position=position,
        signals=dict(record.get("signals") or {}),
        classifications=list(record.get("classifications") or []),
        source=record.get("source") or f"release:{source_list}",
        origin_list=source_list,
        origin_member=publisher,
        origin_entry_id=str(record["uid"]),
        note=record.get("note"),
        deleted=deleted,
        qualities={k: int(v) for k, v in (record.get("qualities") or {}).items()},
        extra={"upstream": record.get("upstream") or {}},
    )


def _state(session: Session, hash_list: HashList, source_list: str) -> int | None:
    return session.scalar(
        select(func.max(PulledRelease.version)).where(
            PulledRelease.list_id == hash_list.id, PulledRelease.source_list == source_list
        )
    )


def pull_release(
    session: Session,
    source: Path | str,
    trusted: Ed25519PublicKey,
    *,
    into: str | None = None,
    snapshot: bool = False,
    actor: str | None = None,
) -> PullResult:
    """Verify and apply releases from `source` (a manifest file or a directory of them).

    From a directory: a first pull applies the newest snapshot, later pulls apply each
    following delta in order. A manifest file is applied as a delta on top of the
    previous version, or, with `snapshot=True` (or on a first pull), as a snapshot.
    """
    src = Path(source)
    if src.is_dir():
        manifests = [_read_manifest(p, trusted) for p in sorted(src.glob("*.manifest.json"))]
        if not manifests:
            raise NotFound(f"{src}: no *.manifest.json release manifests")
    elif src.is_file():
        manifests = [_read_manifest(src, trusted)]
    else:
        raise BadInput(f"{src}: no such file or directory")
    names = {m.body["list"] for m in manifests}
    if len(names) != 1:
        raise BadInput(
            f"{src}: releases of several lists ({', '.join(sorted(names))}); pass one file"
        )
    source_list = str(names.pop())
    manifests.sort(key=lambda m: m.version)
    try:
        hash_list = get_list(session, into or source_list)
    except NotFound:
        hash_list = create_list(
            session,
            into or source_list,
            purpose=str(manifests[0].body.get("purpose") or "block"),
            owner=manifests[0].body.get("owner"),
            description=f"pulled from signed releases of {source_list}",
        )
    result = PullResult(hash_list.name, source_list)
    last = _state(session, hash_list, source_list)
    publisher = manifests[0].body["key_id"][:16]
    if src.is_file():
        only = manifests[0]
        if last is not None and only.version <= last:
            raise ReleaseRefused(
                f"{src}: version {only.version} is not newer than applied version {last} (replay)"
            )
        if snapshot or last is None:
            _apply(session, hash_list, only, "snapshot", publisher, actor, result)
        elif only.version != last + 1:
            raise ReleaseRefused(
                f"{src}: delta version {only.version} does not follow applied version {last}; "
                "pull its snapshot to reset"
            )
        else:
            _apply(session, hash_list, only, "delta", publisher, actor, result)
        return result
    newer = [m for m in manifests if last is None or m.version > last]
    if not newer:
        return result  # up to date
    if last is None or snapshot:
        _apply(session, hash_list, newer[-1], "snapshot", publisher, actor, result)
        return result
    expected = last + 1
    for manifest in newer:
        if manifest.version != expected:
            raise ReleaseRefused(
                f"{manifest.path}: version {manifest.version} follows applied version "
                f"{expected - 1} with a gap; pull with --snapshot to reset"
            )
        _apply(session, hash_list, manifest, "delta", publisher, actor, result)
        expected += 1
    return result


def _apply(
    session: Session,
    hash_list: HashList,
    manifest: _Manifest,
    kind: str,
    publisher: str,
    actor: str | None,
    result: PullResult,
) -> None:
    source_list = str(manifest.body["list"])
    parsed = ParseResult("release")
    if kind == "snapshot":
        data = _read_part(manifest, "snapshot")
        try:
            text = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ReleaseRefused(f"{manifest.path}: snapshot is not gzip ({exc})") from None
        records = _lines(text, manifest.body["files"]["snapshot"]["name"])
        for number, rec in enumerate(records, 1):
            parsed.add(_to_exchange(rec, source_list, publisher, f"snapshot line {number}"))
        keep = {str(r["uid"]) for r in records}
        stale = session.scalars(
            select(Entry).where(
                Entry.list_id == hash_list.id,
                Entry.deleted_at.is_(None),
                Entry.origin_list == source_list,
                Entry.origin_member == publisher,
            )
        )
        for entry in list(stale):
            if entry.origin_entry_id not in keep:
                delete_entry(session, entry, actor=actor, reason=f"not in {source_list} snapshot")
    else:
        data = _read_part(manifest, "delta")
        for number, op in enumerate(_lines(data, manifest.body["files"]["delta"]["name"]), 1):
            position = f"delta line {number}"
            if op.get("op") == "upsert":
                parsed.add(_to_exchange(op["record"], source_list, publisher, position))
            elif op.get("op") == "delete":
                parsed.add(_to_exchange({"uid": op["uid"]}, source_list, publisher, position, True))
            else:
                raise ReleaseRefused(f"{position}: unknown op {op.get('op')!r}")
    report = apply_records(
        session,
        hash_list,
        parsed,
        source=f"release:{source_list}",
        actor=actor,
        confirmed_elsewhere=True,
    )
    if report.errors:
        first = report.errors[0]
        raise ReleaseRefused(
            f"{manifest.path}: {len(report.errors)} records cannot be applied to "
            f"{hash_list.name!r} (first: {first['position']}: {first['error']})"
        )
    session.add(
        PulledRelease(
            list_id=hash_list.id,
            source_list=source_list,
            version=manifest.version,
            kind=kind,
            key_id=manifest.body["key_id"],
            manifest_sha256=manifest.raw_sha256,
            applied_at=utcnow(),
        )
    )
    session.flush()
    summary = {
        "version": manifest.version,
        "kind": kind,
        "added": report.added,
        "updated": report.updated,
        "deleted": report.deleted,
    }
    auditlog.append(
        session, actor, "list.pull", f"list:{hash_list.id}", summary | {"from": source_list}
    )
    result.applied.append(summary)
    crashpoint.reached("releases.pull.applied")


def releases_of(session: Session, hash_list: HashList) -> list[dict[str, Any]]:
    """Releases published from this list, oldest first."""
    rows = session.scalars(
        select(Release).where(Release.list_id == hash_list.id).order_by(Release.version)
    )
    return [
        {
            "version": r.version,
            "created_at": isoformat(as_utc(r.created_at)),
            **r.manifest["counts"],
        }
        for r in rows
    ]

"""Chain of custody: exported packages with a signed manifest, and log-head anchors.

A package is a directory of files plus `manifest.json`:

    {"manifest": {"format": "ridgeline-custody/1", "created_at", "subject": {...},
                  "files": [{"name", "size", "sha256"}], "log_head": {"seq", "hash"},
                  "key_id"}, "signature": base64 Ed25519 over the canonical manifest}

`verify_package` checks the signature against a trusted public key, then that every
listed file has its size and sha256 and that no file was added; with a database it also
checks that the log records the manifest names (the head at export, the report's own
records) are still in the tamper-evident log with the same hashes. Keys are the Ed25519
PEM pairs of `ridgeline lists keygen` (`ridgeline.releases`); the private key never
enters the database. A report package holds the report XML and fileDetails exactly as
sent and, only when asked, the decrypted media; its subject names each file's md5,
sha1 and sha256 as recorded when the report was created.

Anchors: `anchor_line` is the log head as one JSON line, appended by `ridgeline log
head --out FILE` or on a schedule by `ridgeline serve --anchor-file`; `read_anchors`
reads such a file back for `ridgeline.auditlog.verify(anchors=...)`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.errors import BadInput, NotFound
from ridgeline.evidence import EvidenceKey
from ridgeline.releases import key_id
from ridgeline.reports import core
from ridgeline.reports import documents as docs
from ridgeline.store import Store
from ridgeline.timeutil import isoformat, utcnow

FORMAT = "ridgeline-custody/1"
MANIFEST = "manifest.json"
ENV_SIGNING_KEY = "RIDGELINE_SIGNING_KEY_FILE"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_name(name: str) -> str:
    """A file name that stays inside the package (no separators, no leading dot)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "file"
    return cleaned[:200]


def write_package(
    directory: Path | str,
    files: Mapping[str, bytes],
    subject: Mapping[str, Any],
    log_head: tuple[int, str],
    key: Ed25519PrivateKey | None,
) -> dict[str, Any]:
    """Write `files` and their manifest (signed when `key` is given) into `directory`,
    which must be empty or new; returns the manifest body."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise BadInput(f"{target} is not empty; a package is written into a new folder")
    listed = []
    for name, data in sorted(files.items()):
        if not _SAFE.match(name) or name == MANIFEST:
            raise BadInput(f"bad package file name {name!r}")
        fd = os.open(target / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        listed.append({"name": name, "size": len(data), "sha256": _sha256(data)})
    body = {
        "format": FORMAT,
        "created_at": isoformat(utcnow()),
        "subject": dict(subject),
        "files": listed,
        "log_head": {"seq": log_head[0], "hash": log_head[1]},
        "key_id": key_id(key.public_key()) if key is not None else None,
    }
    signature = base64.b64encode(key.sign(_canonical(body))).decode() if key else None
    document = {"manifest": body, "signature": signature}
    (target / MANIFEST).write_bytes(json.dumps(document, indent=2, sort_keys=True).encode())
    return body


@dataclass
class PackageCheck:
    """Outcome of `verify_package`: `problems` is empty when the package is intact."""

    path: str
    problems: list[str] = field(default_factory=list)
    files: int = 0
    signed_by: str | None = None
    subject: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "path": self.path,
            "files": self.files,
            "signed_by": self.signed_by,
            "subject": self.subject,
            "problems": list(self.problems),
        }


def verify_package(
    directory: Path | str,
    trusted: Ed25519PublicKey | None,
    *,
    session: Session | None = None,
) -> PackageCheck:
    """Check a package's signature (required when `trusted` is given), every file's
    size and sha256, that nothing was added, and (with `session`) its log records."""
    target = Path(directory)
    check = PackageCheck(str(target))
    try:
        document = json.loads((target / MANIFEST).read_bytes())
        body = document["manifest"]
        signature = document.get("signature")
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError("unknown manifest format")
        files = body["files"]
        if not isinstance(files, list):
            raise ValueError("no file list")
    except OSError as exc:
        check.problems.append(f"{MANIFEST}: {exc.strerror}")
        return check
    except (ValueError, KeyError, TypeError) as exc:
        check.problems.append(f"{MANIFEST}: not a custody manifest ({exc})")
        return check
    subject = body.get("subject")
    check.subject = subject if isinstance(subject, dict) else {}
    if trusted is not None:
        if not isinstance(signature, str):
            check.problems.append("the manifest is not signed")
        elif body.get("key_id") != key_id(trusted):
            check.problems.append(
                f"signed with key {str(body.get('key_id'))[:16]}…, not the trusted key "
                f"{key_id(trusted)[:16]}…"
            )
        else:
            try:
                trusted.verify(base64.b64decode(signature, validate=True), _canonical(body))
                check.signed_by = key_id(trusted)
            except (InvalidSignature, ValueError):
                check.problems.append("the signature does not verify: the manifest was altered")
    names = set()
    for item in files:
        name = str(item.get("name", "")) if isinstance(item, dict) else ""
        if not _SAFE.match(name) or name == MANIFEST:
            check.problems.append(f"bad file name {name!r} in the manifest")
            continue
        names.add(name)
        try:
            data = (target / name).read_bytes()
        except OSError:
            check.problems.append(f"{name}: missing")
            continue
        if len(data) != item.get("size") or _sha256(data) != item.get("sha256"):
            check.problems.append(f"{name}: sha256 does not match the manifest (altered)")
        check.files += 1
    for extra in sorted(p.name for p in target.iterdir() if p.name not in names | {MANIFEST}):
        check.problems.append(f"{extra}: not in the manifest (added)")
    if session is not None:
        check.problems += _log_problems(session, body)
    return check


def _log_problems(session: Session, body: Mapping[str, Any]) -> list[str]:
    """Records the manifest names that the log no longer holds as they were."""
    wanted = [body.get("log_head") or {}]
    subject = body.get("subject") or {}
    wanted += list(subject.get("log_records") or [])
    problems = []
    for item in wanted:
        seq, digest = item.get("seq"), item.get("hash")
        if not isinstance(seq, int) or not seq:
            continue
        record = auditlog.LogRecord
        stored = session.scalar(select(record.hash).where(record.seq == seq))
        if stored != digest:
            problems.append(
                f"log record {seq} is {'missing' if stored is None else 'different'} in this "
                "database's log: the log was rewritten or this is another database"
            )
    return problems


def report_package(
    session: Session, report_id: int, *, media_key: EvidenceKey | None = None
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files and subject of a report package: the `<report>` document and each
    file's fileDetails as sent (or as they would be), the recorded hashes of every file,
    the report's records in the tamper-evident log and, with `media_key`, the media."""
    row = core.get_report(session, report_id)
    files: dict[str, bytes] = {"report.xml": docs.report_to_xml(core.report_of(row))}
    described = []
    for f in row.files:
        if f.details is not None:
            files[f"fileDetails-{f.position}.xml"] = core.file_details_xml(row, f)
        if media_key is not None:
            data = core.file_bytes(f, media_key)
            if hashlib.sha256(data).hexdigest() != f.sha256:  # pragma: no cover - AES-GCM
                raise BadInput(f"file {f.position} does not match its recorded sha256")
            files[f"media-{f.position}-{safe_name(f.file_name)}"] = data
        described.append(
            {
                "position": f.position,
                "file_name": f.file_name,
                "size": f.size,
                "md5": f.md5,
                "sha1": f.sha1,
                "sha256": f.sha256,
                "ncmec_file_id": f.ncmec_file_id,
                "server_md5": f.server_md5,
            }
        )
    records = [
        {"seq": r.seq, "hash": r.hash, "action": r.action, "at": isoformat(r.at)}
        for r in auditlog.records(session, subject=f"report:{row.id}", limit=None)
    ]
    subject = {
        "kind": "cybertip-report",
        "report_id": row.id,
        "state": row.state,
        "environment": row.environment,
        "ncmec_report_id": row.ncmec_report_id,
        "files": described,
        "media_included": media_key is not None,
        "log_records": records,
    }
    return files, subject


def export_report(
    store: Store,
    report_id: int,
    directory: Path | str,
    key: Ed25519PrivateKey | None,
    *,
    media_key: EvidenceKey | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Write a report package and log the export (who, which report, manifest hash)."""
    with store.session() as session:
        files, subject = report_package(session, report_id, media_key=media_key)
        head = auditlog.head(session)
    body = write_package(directory, files, subject, head, key)
    with store.session() as session:
        auditlog.append(
            session,
            actor,
            "report.export",
            f"report:{report_id}",
            {
                "manifest_sha256": _sha256(_canonical(body)),
                "files": len(body["files"]),
                "media": media_key is not None,
                "signed_by": body["key_id"],
            },
        )
    return body


# --- anchors ----------------------------------------------------------------------


def anchor_line(session: Session) -> dict[str, Any]:
    """The log head now, as the JSON object one anchor line holds."""
    seq, digest = auditlog.head(session)
    return {"seq": seq, "hash": digest, "at": isoformat(utcnow())}


def append_anchor(path: Path | str, anchor: Mapping[str, Any]) -> None:
    """Append one anchor line to `path` and fsync it (the file only ever grows)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(dict(anchor), sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_anchors(path: Path | str) -> list[tuple[int, str]]:
    """(seq, hash) of every line of an anchor file, or a clear error."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            seq, digest = item["seq"], item["hash"]
            if not isinstance(seq, int) or not isinstance(digest, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise BadInput(f"{path} line {number}: not an anchor line") from None
        out.append((seq, digest.strip().lower()))
    if not out:
        raise NotFound(f"{path}: no anchors")
    return out


class Anchorer:
    """Appends the log head to a file every `interval` seconds while it changes (for
    `ridgeline serve --anchor-file`); the first line is written at start."""

    def __init__(self, store: Store, path: Path | str, interval: float) -> None:
        self.store = store
        self.path = Path(path)
        self.interval = interval
        self._stop = threading.Event()
        self._last: tuple[int, str] | None = None
        self._thread = threading.Thread(target=self._run, name="ridgeline-anchor", daemon=True)

    def write_once(self) -> bool:
        """Append the head if it moved since the last line; whether a line was written."""
        with self.store.session() as session:
            anchor = anchor_line(session)
        current = (int(anchor["seq"]), str(anchor["hash"]))
        if current == self._last:
            return False
        append_anchor(self.path, anchor)
        self._last = current
        return True

    def start(self) -> None:
        self.write_once()
        self._thread.start()

    def _run(self) -> None:
        import logging

        while not self._stop.wait(self.interval):
            try:
                self.write_once()
            except Exception:  # the next tick tries again; serving goes on
                logging.getLogger(__name__).exception("cannot anchor the log head")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

"""Evidence storage: media kept for review, encrypted at rest with AES-GCM.

- The 32-byte key comes from a key file or `RIDGELINE_EVIDENCE_KEY` (base64), never
  from the database; only a short fingerprint of it (`key_id`) is stored, so a wrong
  key is reported as such rather than as corruption.
- Each blob has its own random 96-bit nonce, and its associated data binds it to its
  entry id and blob id: ciphertext moved to another entry fails authentication.
- Ciphertext lives in the database (one transaction with the entry; backups stay
  encrypted). Nothing here logs media bytes or file paths.
- `purge` deletes blobs older than the retention period (default 365 days, the US
  preservation period for reported content).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import os
import secrets
import uuid
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ridgeline import auditlog
from ridgeline.errors import BadInput, Conflict, NotFound, RidgelineError
from ridgeline.evidence.models import EvidenceBlob
from ridgeline.lists.core import get_entry
from ridgeline.media import sniff_bytes
from ridgeline.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

ENV_KEY = "RIDGELINE_EVIDENCE_KEY"
ENV_KEY_FILE = "RIDGELINE_EVIDENCE_KEY_FILE"
ENV_RETENTION = "RIDGELINE_EVIDENCE_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 365
#: Largest media item accepted for review storage.
MAX_EVIDENCE_BYTES = 256 * 1024 * 1024
KEY_BYTES = 32


class EvidenceKeyError(RidgelineError):
    """The evidence key is missing, malformed, or does not decrypt a blob."""

    code = "evidence_key"
    http_status = 500


class EvidenceKey:
    """A 32-byte AES-256-GCM key; its bytes are never printed."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise EvidenceKeyError(
                f"evidence key must be {KEY_BYTES} bytes, got {len(raw)} "
                "(generate one with `ridgeline evidence keygen FILE`)"
            )
        self._raw = bytes(raw)
        self._aead: AESGCM | None = None
        # once: every file stored with the key (a report draft per hit) records it
        self._key_id = hashlib.sha256(b"ridgeline-evidence-key-id\x00" + self._raw).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        """A short fingerprint that identifies the key without revealing it."""
        return self._key_id

    def aead(self) -> AESGCM:
        """The cipher, made once per key (it keeps no per-message state; a report draft
        on a `/v1/match` hit encrypts its file with it)."""
        if self._aead is None:
            self._aead = AESGCM(self._raw)
        return self._aead

    def __repr__(self) -> str:
        return f"<EvidenceKey {self.key_id}>"

    @classmethod
    def from_text(cls, text: str, *, where: str) -> EvidenceKey:
        """Base64 text of 32 bytes (as written by `generate_key_file`)."""
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise EvidenceKeyError(f"evidence key in {where} is not valid base64") from None
        return cls(raw)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> EvidenceKey:
        """A key file holding the key as base64 text (or as the 32 raw bytes)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise EvidenceKeyError(f"cannot read evidence key file: {exc.strerror}") from None
        if len(data) == KEY_BYTES:
            return cls(data)
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise EvidenceKeyError("evidence key file is neither base64 nor 32 raw bytes") from None
        return cls.from_text(text, where="the key file")

    @classmethod
    def load(cls, key_file: str | os.PathLike[str] | None = None) -> EvidenceKey:
        """The key from `key_file`, else `RIDGELINE_EVIDENCE_KEY`, else
        `RIDGELINE_EVIDENCE_KEY_FILE`; a clear error when none is set."""
        if key_file is not None:
            return cls.from_file(key_file)
        env = os.environ.get(ENV_KEY)
        if env:
            return cls.from_text(env, where=ENV_KEY)
        env_file = os.environ.get(ENV_KEY_FILE)
        if env_file:
            return cls.from_file(env_file)
        raise EvidenceKeyError(
            f"no evidence key: pass --key-file, or set {ENV_KEY} (base64 of 32 bytes) "
            f"or {ENV_KEY_FILE}"
        )


def generate_key_file(path: str | os.PathLike[str]) -> EvidenceKey:
    """Write a new random key as base64 to `path` (mode 0600); never overwrites."""
    raw = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict("key file already exists; refusing to overwrite it") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(raw).decode("ascii") + "\n")
    return EvidenceKey(raw)


def _aad(entry_id: int, blob_uuid: str) -> bytes:
    return f"ridgeline-evidence/v1|entry={entry_id}|blob={blob_uuid}".encode()


def store_evidence(
    session: Session,
    entry_id: int,
    data: bytes,
    key: EvidenceKey,
    *,
    media_type: str | None = None,
    actor: str | None = None,
    now: dt.datetime | None = None,
) -> EvidenceBlob:
    """Encrypt `data` and keep it with the entry for review."""
    entry = get_entry(session, entry_id)
    if not data:
        raise BadInput("evidence file is empty")
    if len(data) > MAX_EVIDENCE_BYTES:
        raise BadInput(
            f"evidence file is {len(data)} bytes; the limit is {MAX_EVIDENCE_BYTES} bytes"
        )
    if media_type is None:
        media_type = sniff_bytes(data[:256])[1]
    blob_uuid = uuid.uuid4().hex
    nonce = secrets.token_bytes(12)
    ciphertext = key.aead().encrypt(nonce, data, _aad(entry.id, blob_uuid))
    blob = EvidenceBlob(
        entry_id=entry.id,
        blob_uuid=blob_uuid,
        key_id=key.key_id,
        nonce=nonce,
        ciphertext=ciphertext,
        size=len(data),
        media_type=media_type,
        stored_at=as_utc(now or utcnow()),
        added_by=actor,
    )
    session.add(blob)
    session.flush()
    log.info("stored evidence blob %s for entry %s", blob.id, entry.id)
    auditlog.append(
        session,
        actor,
        "evidence.add",
        f"entry:{entry.id}",
        {"blob_id": blob.id, "size": blob.size, "media_type": media_type, "key_id": key.key_id},
        now=now,
    )
    return blob


def latest_blob(session: Session, entry_id: int) -> EvidenceBlob | None:
    """The newest evidence blob of an entry, if any was kept."""
    return session.scalar(
        select(EvidenceBlob)
        .where(EvidenceBlob.entry_id == entry_id)
        .order_by(EvidenceBlob.stored_at.desc(), EvidenceBlob.id.desc())
        .limit(1)
    )


def get_blob(session: Session, blob_id: int) -> EvidenceBlob:
    found = session.get(EvidenceBlob, blob_id)
    if found is None:
        raise NotFound(f"no evidence blob {blob_id} (it may have been purged)")
    return found


def decrypt_blob(blob: EvidenceBlob, key: EvidenceKey) -> bytes:
    """Plaintext of a blob, or `EvidenceKeyError` naming what is wrong."""
    if blob.key_id != key.key_id:
        raise EvidenceKeyError(
            f"evidence blob {blob.id} was encrypted with key {blob.key_id}, "
            f"but the key given is {key.key_id} (wrong key)"
        )
    try:
        return key.aead().decrypt(blob.nonce, blob.ciphertext, _aad(blob.entry_id, blob.blob_uuid))
    except InvalidTag:
        raise EvidenceKeyError(
            f"evidence blob {blob.id} failed authentication: it was altered or moved "
            "to another entry"
        ) from None


def load_evidence(session: Session, entry_id: int, key: EvidenceKey) -> bytes:
    """Decrypted newest media of an entry (callers render it for review; never log it)."""
    blob = latest_blob(session, entry_id)
    if blob is None:
        raise NotFound(f"entry {entry_id} has no evidence stored")
    return decrypt_blob(blob, key)


def retention_days() -> int:
    """Configured retention (`RIDGELINE_EVIDENCE_RETENTION_DAYS`), default 365."""
    raw = os.environ.get(ENV_RETENTION)
    if not raw:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise BadInput(f"{ENV_RETENTION} must be a whole number of days") from None
    if days < 0:
        raise BadInput(f"{ENV_RETENTION} cannot be negative")
    return days


def purge(
    session: Session,
    *,
    older_than_days: int | None = None,
    now: dt.datetime | None = None,
    actor: str | None = None,
) -> int:
    """Delete evidence stored more than `older_than_days` ago; returns how many blobs."""
    days = retention_days() if older_than_days is None else older_than_days
    if days < 0:
        raise BadInput("retention days cannot be negative")
    cutoff = as_utc(now or utcnow()) - dt.timedelta(days=days)
    result = session.execute(delete(EvidenceBlob).where(EvidenceBlob.stored_at < cutoff))
    count = int(getattr(result, "rowcount", 0) or 0)
    log.info("purged %d evidence blobs", count)
    auditlog.append(
        session, actor, "evidence.purge", None, {"older_than_days": days, "purged": count}, now=now
    )
    return count


def list_evidence(session: Session, entry_id: int | None = None) -> list[EvidenceBlob]:
    """Stored blobs (metadata only), oldest first."""
    query = select(EvidenceBlob).order_by(EvidenceBlob.id)
    if entry_id is not None:
        query = query.where(EvidenceBlob.entry_id == entry_id)
    return list(session.scalars(query))

"""Filing a report: a persisted state machine that never files twice.

    draft -> validated -> submitting -> submitted(reportId) -> [files: pending ->
    uploading -> uploaded(fileId) -> details_sent] -> finishing -> finished
    submitted | finishing -> retracting -> retracted
    submitting (reply lost or run killed) -> needs_attention

Every state is committed before the call that leaves it, so a run killed at any point
resumes where it stopped. `/submit` is the one call that cannot be repeated safely
(the protocol has no client key): if its reply is lost, or a run died while it was in
flight, the report moves to `needs_attention` and nothing is submitted until an
operator decides (`resolve`). `/upload` after a lost reply is repeated (at worst one
stray file without details stays in the open report; its id is recorded when known).
`/fileinfo`, `/finish` and `/retract` are repeated freely: 5102/5101 mean "already
done". Decisions are made on `responseCode`, never on the HTTP status.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import selectinload

from ridgeline import auditlog, crashpoint
from ridgeline.errors import BadInput, Conflict, NotFound, RidgelineError
from ridgeline.evidence import EvidenceKey
from ridgeline.reports import client as ct
from ridgeline.reports import core
from ridgeline.reports import documents as docs
from ridgeline.reports.models import CyberTipEvent, CyberTipFile, CyberTipReport
from ridgeline.reports.schema import Problem
from ridgeline.store import Store
from ridgeline.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

#: Codes on /submit that certainly mean "no report was opened" (credentials, rights,
#: the document itself). Any other non-zero code (1000 server error, unknown codes)
#: leaves open whether a report exists, so it is treated like a lost reply.
SUBMIT_REFUSALS = frozenset({1001, 1100, 2000, 3000, 3100, 4000, 4100, 4110, 4200})
SUBMIT_INVALID = frozenset({1001, 4100, 4110})


class NeedsAttention(Conflict):
    """The report waits for an operator's decision; nothing more is sent until then."""

    code = "report_needs_attention"


class FilingFailed(RidgelineError):
    """A step failed in a way that is safe to resume: run `reports file` again."""

    code = "filing_failed"
    http_status = 502


class InvalidReport(BadInput):
    """The report has validation errors; `problems` lists them."""

    code = "invalid_report"

    def __init__(self, message: str, problems: list[Problem]) -> None:
        shown = "; ".join(f"{p.path}: {p.message}" for p in problems[:10])
        super().__init__(f"{message}: {shown}" if shown else message)
        self.problems = problems


@dataclass(frozen=True)
class FilingResult:
    id: int
    state: str
    report_id: int | None
    file_ids: list[str | None]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "reportId": self.report_id,
            "fileIds": self.file_ids,
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load(store: Store, report_id: int) -> CyberTipReport:
    with store.session() as session:
        row = session.get(CyberTipReport, report_id, options=[selectinload(CyberTipReport.files)])
        if row is None:
            raise NotFound(f"no report {report_id}")
        return row


def _result(row: CyberTipReport) -> FilingResult:
    return FilingResult(
        row.id, row.state, row.ncmec_report_id, [f.ncmec_file_id for f in row.files]
    )


def _move(
    store: Store,
    report_id: int,
    expect: tuple[str, ...],
    to: str,
    actor: str | None,
    action: str,
    details: dict[str, Any] | None = None,
    **values: Any,
) -> bool:
    """Compare-and-set the state in one committed transaction (two runs cannot both
    leave `validated` for `submitting`)."""
    with store.session() as session:
        result = session.execute(
            update(CyberTipReport)
            .where(CyberTipReport.id == report_id, CyberTipReport.state.in_(expect))
            .values(state=to, updated_at=utcnow(), **values)
        )
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            return False
        session.add(
            CyberTipEvent(
                report_id=report_id, actor=actor, action=action, details=details or {"to": to}
            )
        )
        if to in ("submitted", "finished", "retracted", "needs_attention"):
            auditlog.append(session, actor, f"report.{to}", f"report:{report_id}", details or {})
    log.info("report %s: %s -> %s", report_id, expect, to)
    return True


def _attention(
    store: Store, row: CyberTipReport, expect: tuple[str, ...], why: str, actor: str | None
) -> NeedsAttention:
    _move(
        store,
        row.id,
        expect,
        "needs_attention",
        actor,
        "needs_attention",
        {"reason": why, "from": row.state},
        attention=why,
        attention_from=row.state,
    )
    return NeedsAttention(f"report {row.id} needs attention: {why}")


class Filer:
    """Drives one report through the protocol with one client."""

    def __init__(
        self,
        store: Store,
        client: ct.CyberTipClient,
        key: EvidenceKey | None,
        *,
        actor: str | None = None,
        retries: int = 2,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.client = client
        self.key = key
        self.actor = actor
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    @property
    def environment(self) -> str:
        return self.client.endpoint.environment

    def _pause(self, attempt: int) -> None:
        self.sleep(self.backoff * (attempt + 1))

    # ------------------------------------------------------------ file

    def _note_error(self, report_id: int, error: str) -> None:
        """Keep why the last run stopped (`lastError` in `reports show`), with an event."""
        with self.store.session() as session:
            session.execute(
                update(CyberTipReport)
                .where(CyberTipReport.id == report_id)
                .values(last_error=error, updated_at=utcnow())
            )
            session.add(
                CyberTipEvent(
                    report_id=report_id,
                    actor=self.actor,
                    action="stopped",
                    details={"error": error},
                )
            )

    def file(self, report_id: int) -> FilingResult:
        """Take the report from wherever it is to `finished` (or raise why not).

        A resumable failure (an upload, /fileinfo or /finish that did not get through)
        is kept as the report's `last_error` until a later run finishes it."""
        try:
            return self._file(report_id)
        except FilingFailed as exc:
            self._note_error(report_id, str(exc))
            raise

    def _file(self, report_id: int) -> FilingResult:
        for _ in range(1000):
            row = _load(self.store, report_id)
            state = row.state
            crashpoint.reached(f"report.state.{state}")  # between protocol steps
            unsent = state in ("draft", "validated")
            if row.environment and row.environment != self.environment and not unsent:
                raise Conflict(
                    f"report {report_id} was submitted to the {row.environment} environment; "
                    f"it cannot be continued in {self.environment}"
                )
            if state == "finished":
                return _result(row)
            if state in ("retracted", "retracting"):
                raise Conflict(f"report {report_id} is {state}; it will not be filed")
            if state == "needs_attention":
                raise NeedsAttention(f"report {report_id} needs attention: {row.attention}")
            if state in ("draft", "validated"):
                self._submit(row)
            elif state == "submitting":
                raise _attention(
                    self.store,
                    row,
                    ("submitting",),
                    "an earlier run stopped (or is still waiting) while /submit was in flight, "
                    "so NCMEC may or may not have opened a report. Ask NCMEC, then run "
                    "`ridgeline reports resolve "
                    f"{report_id} --report-id N` or `--not-submitted`",
                    self.actor,
                )
            elif state == "submitted":
                self._send_files(row)
                _move(self.store, row.id, ("submitted",), "finishing", self.actor, "finishing")
            elif state == "finishing":
                self._finish(row)
        raise FilingFailed(f"report {report_id} did not settle")  # pragma: no cover

    def _submit(self, row: CyberTipReport) -> None:
        with self.store.session() as session:
            fresh = core.get_report(session, row.id)
            problems = core.revalidate(session, fresh)
            state = fresh.state
            xml = docs.report_to_xml(core.report_of(fresh))
        if docs.errors(problems):
            raise InvalidReport(f"report {row.id} is not valid", docs.errors(problems))
        if state != "validated":  # pragma: no cover - revalidate keeps draft/validated
            return
        if not _move(
            self.store,
            row.id,
            ("validated",),
            "submitting",
            self.actor,
            "submit",
            {"environment": self.environment, "bytes": len(xml), "sha256": _sha256(xml)},
            environment=self.environment,
            last_error=None,
        ):
            return  # another run moved it; the loop looks again
        try:
            reply = self.client.submit(xml)
            crashpoint.reached("report.submit.replied")  # answered, not yet recorded
        except (ct.NotSent, ct.AuthFailed) as exc:
            _move(
                self.store, row.id, ("submitting",), "validated", self.actor, "submit_failed",
                {"error": str(exc)}, last_error=str(exc),
            )  # fmt: skip
            raise FilingFailed(f"{exc}; nothing was filed") from None
        except ct.ReplyLost as exc:
            raise _attention(
                self.store,
                row,
                ("submitting",),
                f"the reply to /submit was lost ({exc}); NCMEC may have opened a report. "
                "Ask NCMEC, then run `ridgeline reports resolve "
                f"{row.id} --report-id N` or `--not-submitted`",
                self.actor,
            ) from None
        if reply.ok and reply.report_id is not None:
            now = utcnow()
            # needs_attention too: another run may have found this report "submitting"
            # meanwhile and given up on it; the reportId now settles the question.
            if not _move(
                self.store, row.id, ("submitting", "needs_attention"), "submitted", self.actor,
                "submitted", {"reportId": reply.report_id, "sha256": _sha256(xml)},
                ncmec_report_id=reply.report_id, submitted_at=now,
                keep_until=core.preserve_until(now), attention=None, attention_from=None,
            ):  # fmt: skip
                raise Conflict(
                    f"report {row.id} changed while /submit was answered: NCMEC opened report "
                    f"{reply.report_id}; run `ridgeline reports resolve {row.id} --report-id "
                    f"{reply.report_id}` if it is not recorded"
                )
            return
        if reply.ok or reply.code not in SUBMIT_REFUSALS:
            raise _attention(
                self.store,
                row,
                ("submitting",),
                f"/submit answered {reply.explain()} without a usable reportId; NCMEC may "
                "have opened a report. Ask NCMEC, then run `ridgeline reports resolve "
                f"{row.id} --report-id N` or `--not-submitted`",
                self.actor,
            )
        message = reply.explain()
        if reply.code in SUBMIT_INVALID:
            server = Problem("report", f"rejected by NCMEC: {reply.description or message}")
            problems_json = [*(row.problems or []), server.to_json()]
            _move(
                self.store, row.id, ("submitting",), "draft", self.actor, "rejected",
                {"code": reply.code, "description": reply.description},
                last_error=message, problems=problems_json,
            )  # fmt: skip
            raise InvalidReport(f"NCMEC rejected report {row.id}", [server])
        _move(
            self.store, row.id, ("submitting",), "validated", self.actor, "submit_refused",
            {"code": reply.code}, last_error=message,
        )  # fmt: skip
        raise FilingFailed(f"{message}; nothing was filed")

    # ------------------------------------------------------------ files

    def _send_files(self, row: CyberTipReport) -> None:
        assert row.ncmec_report_id is not None
        for f in row.files:
            if f.state in ("pending", "uploading"):
                f = self._upload(row, f)
            if f.state == "uploaded" and f.details is not None:
                self._fileinfo(row, f)
            crashpoint.reached("report.file.sent")

    def _file_update(self, file_id: int, **values: Any) -> None:
        with self.store.session() as session:
            session.execute(update(CyberTipFile).where(CyberTipFile.id == file_id).values(**values))

    def _get_file(self, file_id: int) -> CyberTipFile:
        with self.store.session() as session:
            return session.get_one(CyberTipFile, file_id)

    def _event(self, report_id: int, action: str, **details: Any) -> None:
        with self.store.session() as session:
            session.add(
                CyberTipEvent(report_id=report_id, actor=self.actor, action=action, details=details)
            )

    def _upload(self, row: CyberTipReport, f: CyberTipFile) -> CyberTipFile:
        if self.key is None:
            raise FilingFailed(
                "the report has files: give the evidence key (--key-file, "
                "RIDGELINE_EVIDENCE_KEY or RIDGELINE_EVIDENCE_KEY_FILE)"
            )
        data = core.file_bytes(f, self.key)
        rid = row.ncmec_report_id
        assert rid is not None
        stray = list(f.stray_file_ids or [])
        attempts = f.upload_attempts
        for attempt in range(self.retries + 1):
            if f.state == "uploading" or attempt:
                self._event(row.id, "upload_repeat", position=f.position)
            attempts += 1
            self._file_update(f.id, state="uploading", upload_attempts=attempts)
            try:
                reply = self.client.upload(rid, f.file_name, data)
                crashpoint.reached("report.upload.replied")
            except ct.NotSent as exc:
                self._file_update(f.id, state="pending")
                error: str = str(exc)
            except ct.ReplyLost as exc:
                error = f"{exc} (the upload is repeated; NCMEC may keep a stray copy)"
            except ct.AuthFailed as exc:
                self._file_update(f.id, state="pending")
                raise FilingFailed(str(exc)) from None
            else:
                if reply.ok and reply.file_id:
                    if reply.hash == f.md5:
                        now = utcnow()
                        self._file_update(
                            f.id, state="uploaded", ncmec_file_id=reply.file_id,
                            server_md5=reply.hash, uploaded_at=now, stray_file_ids=stray,
                        )  # fmt: skip
                        self._event(row.id, "uploaded", position=f.position, fileId=reply.file_id)
                        return self._get_file(f.id)
                    stray.append(reply.file_id)
                    error = (
                        f"NCMEC's MD5 {reply.hash} of file {f.position} differs from ours "
                        f"{f.md5} (fileId {reply.file_id} left without details)"
                    )
                    self._file_update(f.id, state="pending", stray_file_ids=stray)
                    self._event(row.id, "md5_mismatch", position=f.position, fileId=reply.file_id)
                elif reply.code == ct.REPORT_NOT_FOUND:
                    raise _attention(
                        self.store,
                        row,
                        ("submitted",),
                        f"NCMEC no longer has report {rid} ({reply.explain()}); unfinished "
                        "reports are deleted 24 h after opening or 1 h after the last change. "
                        f"`ridgeline reports resolve {row.id} --not-submitted` files it anew",
                        self.actor,
                    )
                else:
                    self._file_update(f.id, state="pending")
                    error = f"/upload of file {f.position}: {reply.explain()}"
            log.warning("report %s file %s: %s", row.id, f.position, error)
            if attempt < self.retries:
                self._pause(attempt)
        if "MD5" in error:
            raise _attention(self.store, row, ("submitted",), error, self.actor)
        raise FilingFailed(f"{error}; run `ridgeline reports file {row.id}` again to resume")

    def _fileinfo(self, row: CyberTipReport, f: CyberTipFile) -> None:
        details = core.details_of(f)
        assert details is not None and row.ncmec_report_id is not None
        details = dataclasses.replace(
            details, report_id=row.ncmec_report_id, file_id=f.ncmec_file_id
        )
        problems = docs.errors(docs.validate_file_details(details, for_filing=True))
        if problems:
            raise InvalidReport(f"fileDetails of file {f.position} are not valid", problems)
        xml = docs.file_details_to_xml(details)
        error = ""
        for attempt in range(self.retries + 1):
            try:
                reply = self.client.fileinfo(xml)
                crashpoint.reached("report.fileinfo.replied")
            except (ct.NotSent, ct.ReplyLost) as exc:
                error = str(exc)
            except ct.AuthFailed as exc:
                raise FilingFailed(str(exc)) from None
            else:
                if reply.ok:
                    self._file_update(f.id, state="details_sent", details_sent_at=utcnow())
                    self._event(row.id, "fileinfo", position=f.position, sha256=_sha256(xml))
                    return
                if reply.code in (ct.REPORT_NOT_FOUND, ct.FILE_NOT_FOUND):
                    raise _attention(
                        self.store, row, ("submitted",),
                        f"/fileinfo of file {f.position}: {reply.explain()}", self.actor,
                    )  # fmt: skip
                error = f"/fileinfo of file {f.position}: {reply.explain()}"
                if reply.code in SUBMIT_INVALID:
                    break  # the same document would be refused again
            if attempt < self.retries:
                self._pause(attempt)
        raise FilingFailed(
            f"{error}; the report is open at NCMEC: fix and run `ridgeline reports file "
            f"{row.id}` again, or `ridgeline reports retract {row.id}`"
        )

    # ------------------------------------------------------------ finish / retract

    def _finish(self, row: CyberTipReport) -> None:
        rid = row.ncmec_report_id
        assert rid is not None
        error = ""
        for attempt in range(self.retries + 1):
            try:
                reply = self.client.finish(rid)
                crashpoint.reached("report.finish.replied")
            except (ct.NotSent, ct.ReplyLost) as exc:
                error = str(exc)
            except ct.AuthFailed as exc:
                raise FilingFailed(str(exc)) from None
            else:
                if reply.ok or reply.code == ct.ALREADY_FINISHED:
                    now = utcnow()
                    keep = core.preserve_until(now)
                    if row.keep_until is not None and as_utc(row.keep_until) > keep:
                        keep = as_utc(row.keep_until)  # pragma: no cover - clocks going back
                    # What was filed, hash by hash, goes into the tamper-evident log.
                    files = [
                        {"position": f.position, "fileId": f.ncmec_file_id, "md5": f.md5,
                         "sha256": f.sha256}
                        for f in _load(self.store, row.id).files
                    ]  # fmt: skip
                    _move(
                        self.store, row.id, ("finishing",), "finished", self.actor, "finished",
                        {"reportId": rid, "code": reply.code, "fileIds": list(reply.file_ids),
                         "files": files},
                        finished_at=now, keep_until=keep, last_error=None,
                    )  # fmt: skip
                    return
                if reply.code == ct.ALREADY_RETRACTED:
                    _move(
                        self.store, row.id, ("finishing",), "retracted", self.actor,
                        "retracted", {"reportId": rid, "code": reply.code},
                        retracted_at=utcnow(),
                    )  # fmt: skip
                    raise Conflict(f"report {row.id} ({rid}) was retracted at NCMEC")
                if reply.code == ct.REPORT_NOT_FOUND:
                    raise _attention(
                        self.store, row, ("finishing",),
                        f"/finish: {reply.explain()} (unfinished reports expire)", self.actor,
                    )  # fmt: skip
                error = f"/finish: {reply.explain()}"
            if attempt < self.retries:
                self._pause(attempt)
        raise FilingFailed(
            f"{error}; the report stays 'finishing' and `ridgeline reports file {row.id}` "
            "repeats /finish safely"
        )

    def retract(self, report_id: int) -> FilingResult:
        """Withdraw an open (unfinished) report; repeating it is safe."""
        try:
            return self._retract(report_id)
        except FilingFailed as exc:
            self._note_error(report_id, str(exc))
            raise

    def _retract(self, report_id: int) -> FilingResult:
        row = _load(self.store, report_id)
        if row.state == "retracted":
            return _result(row)
        if row.state == "finished":
            raise Conflict(
                f"report {report_id} is finished; a finished report can only be withdrawn "
                "by contacting NCMEC"
            )
        if row.ncmec_report_id is None:
            raise Conflict(
                f"report {report_id} is {row.state} and has no NCMEC report id: there is "
                "nothing to retract at NCMEC"
            )
        if row.environment and row.environment != self.environment:
            raise Conflict(f"report {report_id} was submitted to {row.environment}")
        if row.state != "retracting":
            allowed = ("submitted", "finishing", "needs_attention")
            if not _move(self.store, row.id, allowed, "retracting", self.actor, "retract"):
                raise Conflict(f"report {report_id} is {row.state}; it cannot be retracted")
        error = ""
        for attempt in range(self.retries + 1):
            try:
                reply = self.client.retract(row.ncmec_report_id)
            except (ct.NotSent, ct.ReplyLost) as exc:
                error = str(exc)
            except ct.AuthFailed as exc:
                raise FilingFailed(str(exc)) from None
            else:
                if reply.ok or reply.code in (ct.ALREADY_RETRACTED, ct.REPORT_NOT_FOUND):
                    _move(
                        self.store, row.id, ("retracting",), "retracted", self.actor,
                        "retracted", {"code": reply.code}, retracted_at=utcnow(),
                        last_error=None,
                    )  # fmt: skip
                    return _result(_load(self.store, report_id))
                if reply.code == ct.ALREADY_FINISHED:
                    _move(
                        self.store, row.id, ("retracting",), "finished", self.actor,
                        "finished", {"code": reply.code}, finished_at=utcnow(),
                    )  # fmt: skip
                    raise Conflict(
                        f"report {report_id} was already finished at NCMEC; it can only be "
                        "withdrawn by contacting NCMEC"
                    )
                error = f"/retract: {reply.explain()}"
            if attempt < self.retries:
                self._pause(attempt)
        raise FilingFailed(
            f"{error}; the report stays 'retracting' and `ridgeline reports retract "
            f"{report_id}` repeats /retract safely"
        )


def resolve(
    store: Store,
    report_id: int,
    *,
    ncmec_report_id: int | None = None,
    not_submitted: bool = False,
    actor: str | None = None,
    note: str | None = None,
) -> FilingResult:
    """An operator's explicit decision on a report in `needs_attention`.

    `ncmec_report_id`: NCMEC did open this report (continue with uploads and finish).
    `not_submitted`: NCMEC has no open report for it; it may be submitted again."""
    if (ncmec_report_id is None) == (not not_submitted):
        raise Conflict("decide one thing: give the NCMEC report id, or say it was not submitted")
    row = _load(store, report_id)
    if row.state != "needs_attention":
        raise Conflict(f"report {report_id} is {row.state}, not needs_attention")
    details = {"decision": "report-id" if ncmec_report_id else "not-submitted", "note": note}
    if ncmec_report_id is not None:
        now = utcnow()
        moved = _move(
            store, report_id, ("needs_attention",), "submitted", actor, "resolve",
            {**details, "reportId": ncmec_report_id}, ncmec_report_id=ncmec_report_id,
            submitted_at=row.submitted_at or now, attention=None, attention_from=None,
            keep_until=row.keep_until or core.preserve_until(now),
        )  # fmt: skip
    else:
        with store.session() as session:
            for f in session.get_one(CyberTipReport, report_id).files:
                if f.ncmec_file_id:
                    f.stray_file_ids = [*(f.stray_file_ids or []), f.ncmec_file_id]
                f.ncmec_file_id = None
                f.server_md5 = None
                f.state = "pending"
        moved = _move(
            store, report_id, ("needs_attention",), "validated", actor, "resolve",
            {**details, "previousReportId": row.ncmec_report_id},
            ncmec_report_id=None, attention=None, attention_from=None,
        )  # fmt: skip
    if not moved:  # pragma: no cover - raced with another operator
        raise Conflict(f"report {report_id} changed meanwhile; look again")
    return _result(_load(store, report_id))

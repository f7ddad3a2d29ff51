"""Filing reports against a real local CyberTipline server under failures: lost
replies, 500s, 401s, validation errors, MD5 mismatches, expiry, retraction."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

import httpx
import pytest

from cybertip_server import LocalCyberTip
from ridgeline.errors import Conflict
from ridgeline.evidence import EvidenceKey
from ridgeline.reports import client as ct
from ridgeline.reports import core, filing, samples
from ridgeline.reports import documents as docs
from ridgeline.reports import model as m
from ridgeline.store import Store

KEY = EvidenceKey(bytes(range(32)))
DATA = [b"benign test file one", b"benign test file two"]


@pytest.fixture
def server() -> Iterator[LocalCyberTip]:
    with LocalCyberTip() as s:
        yield s


def make_filer(store: Store, server: LocalCyberTip, *, password: str | None = None) -> filing.Filer:
    endpoint = ct.endpoint_for(
        "test", base_url=server.base, username=server.username, password=password or server.password
    )
    return filing.Filer(store, ct.CyberTipClient(endpoint, timeout=10), KEY, backoff=0)


def draft(store: Store, report: m.Report | None = None, *, files: int = 2) -> int:
    new = [
        core.NewFile(
            f"f{i}.bin",
            DATA[i],
            samples.file_details(hashlib.md5(DATA[i]).hexdigest()) if i == 0 else None,
        )
        for i in range(files)
    ]
    with store.session() as session:
        return core.create_report(session, report or samples.rich_report(), new, KEY).id


def state(store: Store, rid: int) -> core.ReportView:
    with store.session() as session:
        return core.view(core.get_report(session, rid))


def only_report(server: LocalCyberTip) -> tuple[int, str]:
    assert len(server.reports) == 1, server.reports
    (report,) = server.reports.values()
    return report.report_id, report.state


def test_files_a_report_end_to_end(store: Store, server: LocalCyberTip) -> None:
    rid = draft(store)
    result = make_filer(store, server).file(rid)
    ncmec_id, remote_state = only_report(server)
    assert (result.state, result.report_id, remote_state) == ("finished", ncmec_id, "finished")
    remote = server.reports[ncmec_id]
    assert sorted(result.file_ids) == sorted(remote.files)  # type: ignore[type-var]
    first = remote.files[result.file_ids[0]]  # type: ignore[index]
    assert first.md5 == hashlib.md5(DATA[0]).hexdigest() and first.name == "f0.bin"
    assert first.details is not None
    sent = docs.file_details_from_xml(first.details)
    assert (sent.report_id, sent.file_id) == (ncmec_id, result.file_ids[0])
    assert remote.files[result.file_ids[1]].details is None  # type: ignore[index]
    assert docs.report_from_xml(remote.xml) == samples.rich_report()
    shown = state(store, rid)
    assert shown.report_id == ncmec_id
    assert [f.state for f in shown.files] == ["details_sent", "uploaded"]
    assert shown.keep_until is not None and shown.finished_at is not None
    # filing a finished report again sends nothing
    before = list(server.requests)
    assert make_filer(store, server).file(rid).state == "finished"
    assert server.requests == before


def test_invalid_report_is_never_sent(sqlite_store: Store, server: LocalCyberTip) -> None:
    bad = dataclasses.replace(
        samples.rich_report(), reporter=m.Reporter(reporting_person=m.Person())
    )
    rid = draft(sqlite_store, bad)
    with pytest.raises(filing.InvalidReport, match="email is required"):
        make_filer(sqlite_store, server).file(rid)
    assert server.requests == []
    assert state(sqlite_store, rid).state == "draft"


def test_lost_submit_reply_needs_an_operator(store: Store, server: LocalCyberTip) -> None:
    server.fail("/submit", "drop_after")
    rid = draft(store)
    with pytest.raises(filing.NeedsAttention, match="reply to /submit was lost"):
        make_filer(store, server).file(rid)
    assert state(store, rid).state == "needs_attention"
    with pytest.raises(filing.NeedsAttention):
        make_filer(store, server).file(rid)  # nothing is submitted again
    assert server.count("/submit") == 1
    ncmec_id, _ = only_report(server)
    with pytest.raises(Conflict, match="decide one thing"):
        filing.resolve(store, rid)
    filing.resolve(store, rid, ncmec_report_id=ncmec_id, actor="op", note="NCMEC confirmed")
    result = make_filer(store, server).file(rid)
    assert (result.state, result.report_id) == ("finished", ncmec_id)
    assert only_report(server) == (ncmec_id, "finished")
    assert server.count("/submit") == 1


def test_operator_says_not_submitted(sqlite_store: Store, server: LocalCyberTip) -> None:
    server.fail("/submit", "drop_before")
    rid = draft(sqlite_store)
    with pytest.raises(filing.NeedsAttention):
        make_filer(sqlite_store, server).file(rid)
    assert server.reports == {}
    filing.resolve(sqlite_store, rid, not_submitted=True, actor="op")
    assert state(sqlite_store, rid).state == "validated"
    assert make_filer(sqlite_store, server).file(rid).state == "finished"
    assert only_report(server)[1] == "finished"


@pytest.mark.parametrize("kind", ["error500", "garbage500"])
def test_server_errors_on_submit_are_not_retried_blindly(
    sqlite_store: Store, server: LocalCyberTip, kind: str
) -> None:
    server.fail("/submit", kind)
    rid = draft(sqlite_store)
    with pytest.raises(filing.NeedsAttention):
        make_filer(sqlite_store, server).file(rid)
    assert server.count("/submit") == 1
    assert state(sqlite_store, rid).attention


def test_wrong_credentials_file_nothing(sqlite_store: Store, server: LocalCyberTip) -> None:
    rid = draft(sqlite_store)
    with pytest.raises(filing.FilingFailed, match="HTTP 401") as caught:
        make_filer(sqlite_store, server, password="wrong-password").file(rid)
    assert "wrong-password" not in str(caught.value)
    assert state(sqlite_store, rid).state == "validated"
    assert server.reports == {}
    assert make_filer(sqlite_store, server).file(rid).state == "finished"


def test_unreachable_server_files_nothing(sqlite_store: Store, server: LocalCyberTip) -> None:
    rid = draft(sqlite_store)
    endpoint = ct.endpoint_for(
        "test", base_url="http://127.0.0.1:9/ispws", username="u", password="p"
    )
    with pytest.raises(filing.FilingFailed, match="nothing was filed"):
        filing.Filer(sqlite_store, ct.CyberTipClient(endpoint), KEY).file(rid)
    assert state(sqlite_store, rid).state == "validated"


def test_ncmec_validation_failure_returns_the_report_to_draft(
    sqlite_store: Store, server: LocalCyberTip
) -> None:
    rid = draft(sqlite_store)
    server.fail("/submit", "reject4100")
    with pytest.raises(filing.InvalidReport, match="rejected by NCMEC"):
        make_filer(sqlite_store, server).file(rid)
    shown = state(sqlite_store, rid)
    assert shown.state == "draft"
    assert any("cvc-complex-type" in p["message"] for p in shown.problems)
    assert server.reports == {}


def test_the_server_validates_by_the_same_rules(server: LocalCyberTip) -> None:
    bad = dataclasses.replace(
        samples.rich_report(), persons_reported=(m.PersonOrUserReported(),) * 2
    )
    response = httpx.post(
        server.base + "/submit",
        content=docs.report_to_xml(bad),
        headers={"Content-Type": ct.XML_TYPE},
        auth=(server.username, server.password),
    )
    reply = ct.parse_reply(response.status_code, response.content)
    assert response.status_code == 400 and reply is not None and reply.code == 4100
    assert "personOrUserReported[1]: at most one person" in reply.description
    unauthorized = httpx.get(server.base + "/status", auth=("x", "y"))
    assert unauthorized.status_code == 401
    assert unauthorized.headers["WWW-Authenticate"] == 'Basic realm="ESP Web Services"'


def test_lost_upload_reply_is_repeated(store: Store, server: LocalCyberTip) -> None:
    server.fail("/upload", "drop_after")
    rid = draft(store)
    result = make_filer(store, server).file(rid)
    ncmec_id, remote_state = only_report(server)
    assert remote_state == "finished"
    remote = server.reports[ncmec_id].files
    assert len(remote) == 3  # one stray copy whose reply was lost
    assert all(fid in remote for fid in result.file_ids)  # type: ignore[operator]
    assert remote[result.file_ids[0]].details is not None  # type: ignore[index]


def test_md5_mismatch_uploads_again(sqlite_store: Store, server: LocalCyberTip) -> None:
    server.fail("/upload", "bad_md5")
    rid = draft(sqlite_store)
    result = make_filer(sqlite_store, server).file(rid)
    assert result.state == "finished"
    shown = state(sqlite_store, rid)
    assert len(shown.files[0].stray_file_ids) == 1
    assert shown.files[0].server_md5 == shown.files[0].md5
    assert shown.files[0].stray_file_ids[0] != shown.files[0].file_id


def test_md5_mismatch_every_time_needs_attention(
    sqlite_store: Store, server: LocalCyberTip
) -> None:
    for nth in (1, 2, 3):
        server.fail("/upload", "bad_md5", nth)
    rid = draft(sqlite_store)
    with pytest.raises(filing.NeedsAttention, match="MD5"):
        make_filer(sqlite_store, server).file(rid)
    assert state(sqlite_store, rid).state == "needs_attention"


def test_upload_failures_resume_later(sqlite_store: Store, server: LocalCyberTip) -> None:
    for nth in (1, 2, 3):
        server.fail("/upload", "error500", nth)
    rid = draft(sqlite_store)
    with pytest.raises(filing.FilingFailed, match=r"run .* again"):
        make_filer(sqlite_store, server).file(rid)
    assert state(sqlite_store, rid).state == "submitted"
    assert make_filer(sqlite_store, server).file(rid).state == "finished"
    assert server.count("/submit") == 1
    assert len(next(iter(server.reports.values())).files) == 2


def test_fileinfo_and_finish_are_repeated_safely(store: Store, server: LocalCyberTip) -> None:
    server.fail("/fileinfo", "error500")
    server.fail("/finish", "drop_after")  # finished at the server, reply lost: 5102 next
    rid = draft(store)
    assert make_filer(store, server).file(rid).state == "finished"
    assert server.count("/finish") == 2 and server.count("/fileinfo") == 2
    assert only_report(server)[1] == "finished"


def test_finish_unanswered_stays_finishing(sqlite_store: Store, server: LocalCyberTip) -> None:
    for nth in (1, 2, 3):
        server.fail("/finish", "drop_before", nth)
    rid = draft(sqlite_store)
    with pytest.raises(filing.FilingFailed, match="repeats /finish safely"):
        make_filer(sqlite_store, server).file(rid)
    assert state(sqlite_store, rid).state == "finishing"
    with sqlite_store.session() as session:  # `reports show` says why it stopped
        row = core.get_report(session, rid)
        assert "repeats /finish safely" in (row.last_error or "")
        assert [e.action for e in core.events(session, rid)][-1] == "stopped"
    assert make_filer(sqlite_store, server).file(rid).state == "finished"
    with sqlite_store.session() as session:
        assert core.get_report(session, rid).last_error is None


def test_expired_report_needs_attention(sqlite_store: Store, server: LocalCyberTip) -> None:
    for nth in (1, 2, 3):
        server.fail("/upload", "error500", nth)
    rid = draft(sqlite_store)
    with pytest.raises(filing.FilingFailed):
        make_filer(sqlite_store, server).file(rid)
    server.reports.clear()  # NCMEC deleted the unfinished report
    with pytest.raises(filing.NeedsAttention, match="no longer has report"):
        make_filer(sqlite_store, server).file(rid)
    filing.resolve(sqlite_store, rid, not_submitted=True, actor="op")
    assert make_filer(sqlite_store, server).file(rid).state == "finished"
    assert server.count("/submit") == 2  # the operator decided to file it anew


def test_retract_open_report_and_repeat(store: Store, server: LocalCyberTip) -> None:
    for nth in (1, 2, 3):
        server.fail("/upload", "error500", nth)
    rid = draft(store)
    with pytest.raises(filing.FilingFailed):
        make_filer(store, server).file(rid)
    server.fail("/retract", "drop_after")  # retracted at the server, reply lost: 5101 next
    assert make_filer(store, server).retract(rid).state == "retracted"
    assert only_report(server)[1] == "retracted"
    assert server.count("/retract") == 2
    assert make_filer(store, server).retract(rid).state == "retracted"
    assert server.count("/retract") == 2
    with pytest.raises(Conflict, match="retracted"):
        make_filer(store, server).file(rid)


def test_retract_refused_for_finished_and_unsubmitted(
    sqlite_store: Store, server: LocalCyberTip
) -> None:
    rid = draft(sqlite_store)
    with pytest.raises(Conflict, match="nothing to retract"):
        make_filer(sqlite_store, server).retract(rid)
    make_filer(sqlite_store, server).file(rid)
    with pytest.raises(Conflict, match="contacting NCMEC"):
        make_filer(sqlite_store, server).retract(rid)


def test_environment_is_fixed_once_submitted(sqlite_store: Store, server: LocalCyberTip) -> None:
    for nth in (1, 2, 3):
        server.fail("/upload", "error500", nth)
    rid = draft(sqlite_store)
    with pytest.raises(filing.FilingFailed):
        make_filer(sqlite_store, server).file(rid)
    production = ct.endpoint_for(
        "production", base_url=server.base, username=server.username, password=server.password
    )
    with pytest.raises(Conflict, match="submitted to the test environment"):
        filing.Filer(sqlite_store, ct.CyberTipClient(production), KEY).file(rid)


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ct.ENV_USER, raising=False)
    monkeypatch.delenv(ct.ENV_PASSWORD, raising=False)
    with pytest.raises(ct.CredentialsMissing, match="RIDGELINE_CYBERTIP_USERNAME"):
        ct.endpoint_for("production")
    monkeypatch.setenv(ct.ENV_USER, "generic")
    monkeypatch.setenv(ct.ENV_PASSWORD, "generic-secret")
    monkeypatch.setenv("RIDGELINE_CYBERTIP_PRODUCTION_USERNAME", "prod")
    monkeypatch.setenv("RIDGELINE_CYBERTIP_PRODUCTION_PASSWORD", "prod-secret")
    production = ct.endpoint_for("production")
    assert (production.username, production.base_url) == ("prod", ct.BASES["production"])
    assert "prod-secret" not in repr(production)
    assert ct.endpoint_for("test").username == "generic"


def test_status(server: LocalCyberTip) -> None:
    endpoint = ct.endpoint_for(
        "test", base_url=server.base, username="esp-user", password="esp-secret"
    )
    with ct.CyberTipClient(endpoint) as client:
        reply = client.status()
    assert reply.ok and reply.description.startswith("Remote User : esp-user")


def test_reply_parsing() -> None:
    done = ct.parse_reply(
        200,
        b"<reportDoneResponse><responseCode>0</responseCode><reportId>7855778</reportId>"
        b"<files><fileId>b6636ef679532f0dc1207b96ee15e943</fileId></files></reportDoneResponse>",
    )
    assert done is not None and done.ok and done.report_id == 7855778
    assert done.file_ids == ("b6636ef679532f0dc1207b96ee15e943",)
    assert ct.parse_reply(500, b"<html/>") is None
    assert ct.parse_reply(401, b"") is None
    refused = ct.parse_reply(
        200, b"<reportResponse><responseCode>5102</responseCode></reportResponse>"
    )
    assert refused is not None and "already finished" in refused.explain()


def test_two_runs_at_once_submit_once(sqlite_store: Store, server: LocalCyberTip) -> None:
    """A second run that finds the report `submitting` gives up (needs attention) instead
    of submitting again; the first run's reply then records the reportId and goes on."""
    import threading

    fault = server.fail("/submit", "hold_reply")
    rid = draft(sqlite_store)
    results: list[object] = []
    first = threading.Thread(
        target=lambda: results.append(make_filer(sqlite_store, server).file(rid))
    )
    first.start()
    assert fault.hit.wait(30)
    with pytest.raises(filing.NeedsAttention):
        make_filer(sqlite_store, server).file(rid)
    fault.release.set()
    first.join(60)
    (result,) = results
    assert isinstance(result, filing.FilingResult) and result.state == "finished"
    assert server.count("/submit") == 1 and only_report(server)[1] == "finished"

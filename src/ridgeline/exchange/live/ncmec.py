"""NCMEC's hash-sharing API (v2), as python-threatexchange's NCMEC client speaks it.

`GET {base}/v2/entries?from=..&to=..` answers a `queryResult` page (the `ncmec-xml`
format) whose `paging/next` is the path of the next page of the same range; HTTP
Basic auth. Entries come in no time order within a range, so the cursor's watermark
(`from`) moves to the range's end (`to`) only when its last page is stored; until
then the cursor keeps the range and the next-page path (not used after 12 hours, as
NCMEC advises: the range is fetched again from its start instead, which re-applies
entries idempotently by member and id). Deletions arrive as `deletedImage` /
`deletedVideo` entries. Feedback: `PUT {base}/v2/entries/{member}/{id}/{TYPE}/feedback`
with a `feedbackSubmission` (negative feedback names a reason from
`GET {base}/v2/feedback/{TYPE}/reasons`).
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx

from ridgeline.errors import BadInput
from ridgeline.exchange import ncmec as ncmec_format
from ridgeline.exchange.live.base import Client, Cursor, FeedbackItem, FeedbackSent, Page
from ridgeline.exchange.live.errors import CursorExpired, ExchangeError
from ridgeline.exchange.live.http import expect_ok
from ridgeline.exchange.safexml import parse_xml
from ridgeline.timeutil import parse_iso

#: python-threatexchange's `NCMECEnvironment` names -> base URLs.
ENVIRONMENTS = {
    "Industry": "https://report.cybertip.org/hashsharing",
    "Industry_Exploitative": "https://report.cybertip.org/exploitative-hashsharing",
    "LawEnforcement": "https://lesp.ncmec.org/csam-hashsharing",
    "NGO": "https://hashsharing.ncmec.org/npo",
    "Exploitative": "https://hashsharing.ncmec.org/exploitative",
    "test_Industry": "https://exttest.cybertip.org/hashsharing",
    "test_NGO": "https://hashsharing-test.ncmec.org/npo",
}
#: Our signal -> NCMEC fingerprint (feedback) type.
FEEDBACK_TYPES = {"md5": "MD5", "sha1": "SHA1", "photodna": "PDNA", "pdq": "PDQ"}
_DATE = "%Y-%m-%dT%H:%M:%SZ"


def _date(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(_DATE)


def since_seconds(value: Any) -> int:
    """A `since` setting (Unix seconds or ISO 8601) as Unix seconds."""
    if value is None or value == "":
        return 0
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        return int(parse_iso(text).timestamp())
    except ValueError:
        raise BadInput(f"since {value!r} is neither Unix seconds nor ISO 8601") from None


class NCMECClient(Client):
    kind = "ncmec"
    format = ncmec_format.NAME
    required_credentials = ("username", "password")
    settings_keys = ("environment", "since", "members", "end_lag_s")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.members = {str(m) for m in self.settings.get("members") or []}
        self._reasons: dict[str, dict[str, str]] = {}

    @classmethod
    def prepare(cls, settings: dict[str, Any]) -> dict[str, Any]:
        env = settings.get("environment")
        if env and not settings.get("base_url"):
            if env not in ENVIRONMENTS:
                raise BadInput(
                    f"unknown NCMEC environment {env!r}; expected one of {', '.join(ENVIRONMENTS)}"
                )
            settings["base_url"] = ENVIRONMENTS[env]
        return settings

    def http_options(self) -> dict[str, Any]:
        return {"auth": (self.credentials["username"], self.credentials["password"])}

    def _page(self, url: str, params: dict[str, Any] | None, resuming: bool) -> httpx.Response:
        response = self.http.request("GET", url, params=params)
        if resuming and 400 <= response.status_code < 500:
            raise CursorExpired(f"GET {url.split('?')[0]}: HTTP {response.status_code}")
        return expect_ok(response, "GET /v2/entries")

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        start = int(cursor.get("from", since_seconds(self.settings.get("since"))))
        resume = self.fresh(cursor) and cursor.get("to") is not None
        end = (
            int(cursor["to"])
            if resume
            else int(self.clock()) - int(self.settings.get("end_lag_s", 5))
        )
        if end <= start:
            return
        next_url: str | None = str(cursor["next"]) if resume else None
        while True:
            try:
                if next_url:
                    response = self._page(next_url, None, True)
                else:
                    response = self._page(
                        "/v2/entries", {"from": _date(start), "to": _date(end)}, False
                    )
            except CursorExpired:
                next_url = None  # the range again, from its start
                continue
            try:
                parsed = ncmec_format.parse(response.content, f"{self.name} page")
            except BadInput as exc:
                raise ExchangeError(f"{self.name}: the page is not a queryResult ({exc})") from None
            if self.members:
                parsed.records = [r for r in parsed.records if r.origin_member in self.members]
            following = parsed.meta.get("next")
            if following:
                next_url = str(following)
                yield Page(
                    parsed,
                    {"from": start, "to": end, "next": next_url, "next_at": self.clock()},
                )
                continue
            yield Page(parsed, {"from": end}, done=True)
            return

    def reasons(self, fp_type: str) -> dict[str, str]:
        """Negative feedback reasons for a fingerprint type: guid -> name."""
        if fp_type not in self._reasons:
            response = expect_ok(
                self.http.request("GET", f"/v2/feedback/{fp_type}/reasons"), "GET reasons"
            )
            root = parse_xml(response.content, "NCMEC feedback reasons")
            self._reasons[fp_type] = {
                str(r.get("guid")): str(r.get("name") or "")
                for r in root.iter()
                if r.tag == "reason" and r.get("guid")
            }
        return self._reasons[fp_type]

    def _reason_guid(self, fp_type: str, reason: str | None) -> str:
        options = self.reasons(fp_type)
        if reason:
            for guid, name in options.items():
                if reason in (guid, name) or reason.lower() == name.lower():
                    return guid
            raise BadInput(
                f"NCMEC has no {fp_type} feedback reason {reason!r}; it offers "
                + ", ".join(f"{name} ({guid})" for guid, name in options.items())
            )
        if len(options) == 1:
            return next(iter(options))
        raise BadInput(
            f"negative NCMEC feedback needs --reason; {fp_type} offers "
            + ", ".join(options.values())
        )

    def send_feedback(self, item: FeedbackItem) -> list[FeedbackSent]:
        if item.origin_member is None:
            raise BadInput("the entry has no NCMEC member id: it did not come from NCMEC")
        sent: list[FeedbackSent] = []
        for signal in item.signals:
            fp_type = FEEDBACK_TYPES.get(signal)
            if fp_type is None:
                continue
            root = ET.Element("feedbackSubmission", {"xmlns": ncmec_format.NAMESPACE})
            if item.affirmative:
                ET.SubElement(root, "affirmative")
                detail = "affirmative"
            else:
                vote = ET.SubElement(root, "negative")
                guid = self._reason_guid(fp_type, item.reason)
                ET.SubElement(ET.SubElement(vote, "reasonIds"), "guid").text = guid
                detail = f"negative ({guid})"
            path = f"/v2/entries/{item.origin_member}/{item.origin_entry_id}/{fp_type}/feedback"
            expect_ok(
                self.http.request(
                    "PUT",
                    path,
                    content=ET.tostring(root),
                    headers={"Content-Type": "application/xml; charset=utf-8"},
                ),
                f"PUT {path}",
            )
            sent.append(FeedbackSent("PUT", path, detail))
        if not sent:
            raise BadInput(
                "the entry has no fingerprint NCMEC takes feedback on "
                f"({', '.join(FEEDBACK_TYPES)})"
            )
        return sent

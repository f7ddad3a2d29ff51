"""A local stand-in for NCMEC's hash-sharing API v2, as python-threatexchange's NCMEC
client speaks it (`threatexchange/exchanges/clients/ncmec/hash_api.py`).

- `GET /v2/entries?from=..&to=..` (HTTP Basic): the entries whose timestamp lies in
  `[from, to)`, in NO time order (as NCMEC's, threatexchange issue 1744), `page_size`
  a page; `paging/next` is the path of the next page (`...&start=..&size=..&max=..`).
  `expire_cursors()` makes every issued next path invalid (HTTP 400), as NCMEC's
  paging URLs stop working after a while.
- `GET /v2/feedback/{TYPE}/reasons`: `availableFeedbackReasons`.
- `PUT /v2/entries/{member}/{id}/{TYPE}/feedback`: a `feedbackSubmission`, kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from exchange_server import LocalExchange, Reply, Request

NS = "https://hashsharing.ncmec.org/hashsharing/v2"
_DATE = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class NCMECEntry:
    id: str
    member_id: int
    timestamp: int
    fingerprints: dict[str, str]
    member_name: str = "Example ESP"
    kind: str = "image"
    classification: str | None = "A1"
    deleted: bool = False


@dataclass
class FeedbackCall:
    member: str
    entry: str
    fp_type: str
    body: bytes


def _ts(text: str) -> int:
    return int(dt.datetime.strptime(text, _DATE).replace(tzinfo=dt.UTC).timestamp())


def _date(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(_DATE)


class LocalNCMEC(LocalExchange):
    def __init__(
        self, username: str = "esp-user", password: str = "esp-secret", page_size: int = 3
    ) -> None:
        super().__init__()
        self.username, self.password, self.page_size = username, password, page_size
        self.entries: list[NCMECEntry] = []
        self.valid_next: set[str] = set()
        self.feedback: list[FeedbackCall] = []
        self.reasons = {"11111111-2222-3333-4444-555555555555": "Not CSAM"}
        self.ranges: list[tuple[int, int]] = []

    def expire_cursors(self) -> None:
        with self.lock:
            self.valid_next.clear()

    def _authorized(self, request: Request) -> bool:
        import base64

        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def answer(self, request: Request) -> Reply:
        if not self._authorized(request):
            return Reply(401, b"<error>unauthorized</error>", "application/xml")
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and request.path == "/v2/entries":
            return self._entries(request)
        if request.method == "GET" and parts[:2] == ["v2", "feedback"] and parts[-1] == "reasons":
            root = ET.Element("feedbackReasonsResponse", {"xmlns": NS})
            block = ET.SubElement(root, "availableFeedbackReasons")
            for guid, name in self.reasons.items():
                ET.SubElement(block, "reason", {"guid": guid, "name": name})
            return Reply(200, ET.tostring(root), "application/xml")
        if request.method == "PUT" and parts[:2] == ["v2", "entries"] and parts[-1] == "feedback":
            _, _, member, entry, fp_type, _ = parts
            self.feedback.append(FeedbackCall(member, entry, fp_type, request.body))
            return Reply(200, b"", "application/xml")
        return Reply(404, b"<error>not found</error>", "application/xml")

    def _entries(self, request: Request) -> Reply:
        q = request.query
        if "start" in q and request.target not in self.valid_next:
            return Reply(400, b"<error>paging expired</error>", "application/xml")
        start_ts, end_ts = _ts(q["from"]), _ts(q["to"])
        if "start" not in q:
            self.ranges.append((start_ts, end_ts))
        chosen = [e for e in self.entries if start_ts <= e.timestamp < end_ts]
        # Not in time order: by a hash of id and time, as a database scan would give them.
        chosen.sort(key=lambda e: hashlib.sha1(f"{e.id}:{e.timestamp}".encode()).hexdigest())
        offset = int(q.get("start", 0))
        page = chosen[offset : offset + self.page_size]
        root = ET.Element("queryResult", {"xmlns": NS})
        for group, kind in (("images", "image"), ("videos", "video")):
            items = [e for e in page if e.kind == kind]
            if not items:
                continue
            element = ET.SubElement(
                root,
                group,
                {"count": str(len(items)), "maxTimestamp": _date(max(e.timestamp for e in items))},
            )
            for e in items:
                tag = ("deleted" + kind.capitalize()) if e.deleted else kind
                item = ET.SubElement(element, tag)
                ET.SubElement(item, "id").text = e.id
                ET.SubElement(item, "member", {"id": str(e.member_id)}).text = e.member_name
                ET.SubElement(item, "timestamp").text = _date(e.timestamp)
                if e.classification and not e.deleted:
                    ET.SubElement(item, "classification").text = e.classification
                fps = ET.SubElement(item, "fingerprints")
                for name, value in e.fingerprints.items():
                    ET.SubElement(fps, name).text = value
        following = offset + self.page_size
        if following < len(chosen):
            params = {
                "from": q["from"],
                "to": q["to"],
                "start": str(following),
                "size": str(self.page_size),
                "max": str(len(chosen)),
            }
            target = "/v2/entries?" + urllib.parse.urlencode(params)
            self.valid_next.add(target)
            ET.SubElement(ET.SubElement(root, "paging"), "next").text = target
        return Reply(
            200, ET.tostring(root, xml_declaration=True, encoding="utf-8"), "application/xml"
        )

"""A local stand-in for StopNCII's hash API, as python-threatexchange's StopNCII
client speaks it (`threatexchange/exchanges/clients/stopncii/api.py`).

- `GET /FetchHashes?startTimestamp=..&pageSize=..[&nextPageToken=..]` with
  `Ocp-Apim-Subscription-Key` and the FetchHashes `x-functions-key`: records modified
  at or after `startTimestamp`, oldest first; `nextPageToken` while `hasMoreRecords`;
  `nextSetTimestamp` the newest time of the run. `expire_cursors()` invalidates every
  token issued (HTTP 400).
- `POST /SubmitFeedback` with the SubmitFeedback function key: `hashFeedbacks`, kept.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from exchange_server import LocalExchange, Reply, Request


@dataclass
class HashRecord:
    hash_value: str
    timestamp: int
    signal_type: str = "ImagePDQ"
    status: str = "Active"
    case_numbers: dict[str, str] = field(default_factory=dict)
    feedbacks: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "lastModtimestamp": self.timestamp,
            "signalType": self.signal_type,
            "hashValue": self.hash_value,
            "hashStatus": self.status,
            "caseNumbers": self.case_numbers,
            "CSPFeedbacks": self.feedbacks,
        }


class LocalStopNCII(LocalExchange):
    def __init__(
        self,
        subscription_key: str = "sub-key",
        fetch_key: str = "fetch-key",
        feedback_key: str = "feedback-key",
    ) -> None:
        super().__init__()
        self.subscription_key, self.fetch_key, self.feedback_key = (
            subscription_key,
            fetch_key,
            feedback_key,
        )
        self.records: list[HashRecord] = []
        self.tokens: dict[str, tuple[int, int, int]] = {}  # token -> (start, offset, newest)
        self.feedback: list[dict[str, Any]] = []
        self.starts: list[int] = []

    def expire_cursors(self) -> None:
        with self.lock:
            self.tokens.clear()

    def answer(self, request: Request) -> Reply:
        if request.headers.get("ocp-apim-subscription-key") != self.subscription_key:
            return Reply.json(401, {"message": "Access denied: invalid subscription key"})
        key = request.headers.get("x-functions-key")
        if request.method == "GET" and request.path == "/FetchHashes":
            if key != self.fetch_key:
                return Reply.json(401, {"message": "wrong function key"})
            return self._fetch(request)
        if request.method == "POST" and request.path == "/SubmitFeedback":
            if key != self.feedback_key:
                return Reply.json(401, {"message": "wrong function key"})
            doc = json.loads(request.body)
            self.feedback.extend(doc["hashFeedbacks"])
            return Reply.json(200, {"count": doc["count"]})
        return Reply.json(404, {"message": "not found"})

    def _fetch(self, request: Request) -> Reply:
        q = request.query
        size = int(q.get("pageSize", 800))
        token = q.get("nextPageToken")
        if token:
            if token not in self.tokens:
                return Reply.json(400, {"message": "nextPageToken expired"})
            start, offset, newest = self.tokens.pop(token)
        else:
            start, offset = int(q["startTimestamp"]), 0
            self.starts.append(start)
            newest = 0
        chosen = sorted(
            (r for r in self.records if r.timestamp >= start), key=lambda r: r.timestamp
        )
        page = chosen[offset : offset + size]
        newest = max([newest, *(r.timestamp for r in page)])
        more = offset + size < len(chosen)
        next_token = ""
        if more:
            next_token = secrets.token_urlsafe(12)
            self.tokens[next_token] = (start, offset + size, newest)
        return Reply.json(
            200,
            {
                "count": len(page),
                "nextPageToken": next_token or None,
                "nextSetTimestamp": newest or start,
                "hasMoreRecords": more,
                "hashRecords": [r.to_json() for r in page],
            },
        )

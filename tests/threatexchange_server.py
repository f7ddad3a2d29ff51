"""A local stand-in for Meta's ThreatExchange Graph API `threat_updates`, as
python-threatexchange reads it (`clients/fb_threatexchange/api.py`,
`threat_updates.py`).

- `GET /{privacy_group}/threat_updates/?access_token=..&start_time=..&stop_time=..
  &limit=..&fields=..`: updates with `start_time <= last_updated < stop_time`, oldest
  first; `paging.next` is an absolute URL that carries the access token and an
  `after` cursor, as the Graph API's do. `expire_cursors()` invalidates every cursor
  issued (HTTP 400, Graph error code 100). A wrong token answers 400 with code 190
  (OAuthException), as the Graph API does.
- `POST /{descriptor_id}?access_token=..` with `reactions=...`: kept.
"""

from __future__ import annotations

import secrets
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from exchange_server import LocalExchange, Reply, Request


@dataclass
class Update:
    id: int
    indicator: str
    type: str
    last_updated: int
    descriptors: list[dict[str, Any]] = field(default_factory=list)
    should_delete: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(self.id),
            "indicator": self.indicator,
            "type": self.type,
            "last_updated": self.last_updated,
            "should_delete": self.should_delete,
        }
        if not self.should_delete:
            out["descriptors"] = {"data": self.descriptors}
        return out


def descriptor(
    descriptor_id: int, owner: int, status: str = "MALICIOUS", tags: list[str] | None = None,
    reactions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {
        "id": str(descriptor_id),
        "owner": {"id": str(owner)},
        "status": status,
        "tags": tags or [],
    }
    if reactions:
        out["reactions"] = reactions
    return out


class LocalThreatExchange(LocalExchange):
    def __init__(self, token: str = "1234567890|" + "a" * 24, page_size: int = 2) -> None:
        super().__init__()
        self.token, self.page_size = token, page_size
        self.updates: list[Update] = []
        self.cursors: dict[str, int] = {}
        self.reactions: list[tuple[str, str]] = []
        self.ranges: list[tuple[int | None, int | None]] = []

    def expire_cursors(self) -> None:
        with self.lock:
            self.cursors.clear()

    @staticmethod
    def _graph_error(code: int, message: str) -> Reply:
        return Reply.json(
            400, {"error": {"message": message, "type": "OAuthException", "code": code}}
        )

    def answer(self, request: Request) -> Reply:
        if request.query.get("access_token") != self.token:
            return self._graph_error(190, "Invalid OAuth access token.")
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and len(parts) == 2 and parts[1] == "threat_updates":
            return self._updates(request, parts[0])
        if request.method == "POST" and len(parts) == 1:
            form = dict(urllib.parse.parse_qsl(request.body.decode()))
            self.reactions.append((parts[0], form.get("reactions", "")))
            return Reply.json(200, {"success": True})
        return self._graph_error(100, "Unsupported request")

    def _updates(self, request: Request, group: str) -> Reply:
        q = request.query
        start = int(q["start_time"]) if q.get("start_time") else None
        stop = int(q["stop_time"]) if q.get("stop_time") else None
        offset = 0
        if "after" in q:
            if q["after"] not in self.cursors:
                return self._graph_error(100, "The cursor has expired")
            offset = self.cursors.pop(q["after"])
        else:
            self.ranges.append((start, stop))
        chosen = sorted(
            (
                u
                for u in self.updates
                if (start is None or u.last_updated >= start)
                and (stop is None or u.last_updated < stop)
            ),
            key=lambda u: u.last_updated,
        )
        size = int(q.get("limit") or self.page_size)
        size = min(size, self.page_size)
        page = chosen[offset : offset + size]
        doc: dict[str, Any] = {"data": [u.to_json() for u in page]}
        if offset + size < len(chosen):
            cursor = secrets.token_urlsafe(9)
            self.cursors[cursor] = offset + size
            params = {k: v for k, v in q.items() if k != "after"} | {"after": cursor}
            doc["paging"] = {
                "cursors": {"after": cursor},
                "next": f"{self.base}/{group}/threat_updates/?{urllib.parse.urlencode(params)}",
            }
        return Reply.json(200, doc)

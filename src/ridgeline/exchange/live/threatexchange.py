"""Meta's ThreatExchange Graph API `threat_updates`, as python-threatexchange reads it.

`GET {base}/{privacy_group}/threat_updates/?access_token=..&start_time=..&stop_time=..
&limit=..&fields=..` answers `{"data": [...], "paging": {"next": url}}`: each update
names an indicator (`id`, `indicator`, `type`, `last_updated`, `should_delete`) and its
descriptors (`id`, `owner{id}`, `status`, `tags`, `reactions`). An update that
`should_delete` (or lists no descriptors, threatexchange issue 834) tombstones the
entry of that indicator id. The opinions of the descriptors decide whether the entry
is listable, exactly as python-threatexchange aggregates them (MALICIOUS positive,
NON_MALICIOUS negative, HELPFUL / DISAGREE_WITH_TAGS reactions implicit opinions;
only a positive aggregate is listable; a test holds the two to the same answers).

The cursor keeps the run's `[start, stop)` range and the next-page URL (with the
access token removed: it is never stored) until the last page; then `start` moves to
`stop`. Feedback: `POST {base}/{descriptor_id}` with `reactions=HELPFUL` or
`NOT_HELPFUL`, as threatexchange's upvote and downvote.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from ridgeline.errors import BadInput
from ridgeline.exchange.live.base import Client, Cursor, FeedbackItem, FeedbackSent, Page
from ridgeline.exchange.live.errors import ExchangeAuthFailed, ExchangeError
from ridgeline.exchange.live.http import expect_ok
from ridgeline.exchange.live.ncmec import since_seconds
from ridgeline.exchange.records import ExchangeRecord, ParseResult
from ridgeline.timeutil import parse_iso

NAME = "threatexchange"
#: ThreatExchange indicator type -> our signal (and whether it names a video).
TYPES: dict[str, tuple[str, bool]] = {
    "HASH_PDQ": ("pdq", False),
    "HASH_VIDEO_MD5": ("md5", True),
    "HASH_MD5": ("md5", False),
    "HASH_SHA256": ("sha256", False),
    "HASH_VIDEO_SHA256": ("sha256", True),
    "HASH_TMK": ("tmk", True),
}
FIELDS = "indicator,type,last_updated,should_delete,descriptors{id,reactions,owner{id},tags,status}"
#: threatexchange's `AggregateSignalOpinionCategory`, in its order.
NEGATIVE, SEED, POSITIVE, DISPUTED = (
    "NEGATIVE_CLASS",
    "INVESTIGATION_SEED",
    "POSITIVE_CLASS",
    ("DISPUTED"),
)
_RANK = {NEGATIVE: 0, SEED: 1, POSITIVE: 2, DISPUTED: 3}


def _aggregate(categories: list[str]) -> str | None:
    """threatexchange's aggregation: the highest, but negative with anything higher is
    disputed."""
    out: str | None = None
    for category in categories:
        if out is None:
            out = category
            continue
        lo, hi = sorted((out, category), key=_RANK.__getitem__)
        out = hi if lo == hi else (DISPUTED if lo == NEGATIVE else hi)
    return out


def opinions(update: Mapping[str, Any]) -> dict[int, str]:
    """Owner app id -> opinion category of an update's descriptors and reactions."""
    explicit: dict[int, str] = {}
    implicit: dict[int, str] = {}
    for descriptor in (update.get("descriptors") or {}).get("data") or []:
        if "owner" not in descriptor:
            continue  # threatexchange drops these too (a visibility bug of the API)
        owner = int(descriptor["owner"]["id"])
        status = descriptor.get("status")
        explicit[owner] = (
            POSITIVE if status == "MALICIOUS" else NEGATIVE if status == "NON_MALICIOUS" else SEED
        )
        for reaction in descriptor.get("reactions") or []:
            for who in str(reaction.get("value") or "").split(","):
                if not who.strip():
                    continue
                owner_id = int(who)
                if reaction.get("key") == "HELPFUL":
                    implicit[owner_id] = POSITIVE
                elif reaction.get("key") == "DISAGREE_WITH_TAGS" and owner_id not in implicit:
                    implicit[owner_id] = NEGATIVE
    for owner_id, category in implicit.items():
        explicit.setdefault(owner_id, category)
    return explicit


def listable(update: Mapping[str, Any]) -> bool:
    """Whether an update makes a listable entry: not a deletion, and its descriptors'
    aggregate opinion is positive (threatexchange's `POSITIVE_CLASS`)."""
    if update.get("should_delete") or "descriptors" not in update:
        return False
    return _aggregate(list(opinions(update).values())) == POSITIVE


def _tags(descriptor: Mapping[str, Any]) -> list[str]:
    tags = descriptor.get("tags") or []
    if isinstance(tags, dict):
        return sorted(str(t["text"]) for t in tags.get("data") or [])
    return [str(t) for t in tags]


def _time(value: Any) -> Any:
    import datetime as dt

    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    if isinstance(value, str):
        return parse_iso(value)
    return None


def parse_updates(data: list[Any], privacy_group: str, what: str) -> ParseResult:
    """`threat_updates` data as records (hash types Ridgeline has no signal for are
    reported and skipped)."""
    result = ParseResult(NAME)
    for i, update in enumerate(data):
        position = f"{what}:/data/{i}"
        if not isinstance(update, dict) or "id" not in update:
            result.reject(position, "an update without an id")
            continue
        kind = str(update.get("type") or "")
        if kind not in TYPES or TYPES[kind][0] == "tmk":
            result.reject(position, f"indicator type {kind!r} is not a hash Ridgeline reads")
            continue
        signal, video = TYPES[kind]
        descriptors = [
            d for d in (update.get("descriptors") or {}).get("data") or [] if isinstance(d, dict)
        ]
        deleted = bool(update.get("should_delete")) or "descriptors" not in update
        found = opinions(update)
        aggregate = _aggregate(list(found.values()))
        try:
            timestamp = _time(update.get("last_updated"))
        except ValueError:
            result.reject(position, f"last_updated {update.get('last_updated')!r} is not a time")
            continue
        tags = sorted({t for d in descriptors for t in _tags(d)})
        extra: dict[str, Any] = {
            "te_type": kind,
            "descriptors": [str(d["id"]) for d in descriptors if "id" in d],
            "opinion": aggregate or "none",
        }
        if tags:
            extra["tags"] = ",".join(tags)
        if video or "media_type_video" in tags:
            extra["entry_type"] = "video"
        result.add(
            ExchangeRecord(
                position=position,
                signals={signal: str(update.get("indicator") or "")},
                source=NAME,
                origin_list=privacy_group,
                origin_entry_id=str(update["id"]),
                deleted=deleted,
                timestamp=timestamp,
                extra=extra,
                listable=aggregate == POSITIVE,
            )
        )
    return result


def _refuse_bad_token(response: httpx.Response) -> None:
    """The Graph API answers a bad token with HTTP 400 and error code 190."""
    if response.status_code != 400:
        return
    try:
        code = json.loads(response.content).get("error", {}).get("code")
    except (ValueError, AttributeError):
        return
    if code == 190:
        raise ExchangeAuthFailed("ThreatExchange refused the access token (OAuthException 190)")


def _with_token(url: str, token: Mapping[str, str]) -> str:
    """A stored paging URL with the access token put back (httpx's `params` would
    replace the URL's own query, cursor included)."""
    parts = urllib.parse.urlsplit(url)
    query = [*urllib.parse.parse_qsl(parts.query), *token.items()]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _without_token(url: str) -> str:
    """A paging URL with its access_token removed (cursors are stored; tokens never)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "access_token"]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class ThreatExchangeClient(Client):
    """ThreatExchange `threat_updates` of one privacy group."""

    kind = "threatexchange"
    format = NAME
    required_credentials = ("access_token",)
    settings_keys = ("privacy_group", "since", "page_size", "types")
    default_base_url = "https://graph.facebook.com/v26.0"
    default_cursor_max_age_s = 3600.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        group = self.settings.get("privacy_group")
        if not group or not str(group).isdigit():
            raise BadInput(f"source {self.name!r} (threatexchange) needs a numeric privacy_group")
        self.privacy_group = str(group)

    def _same_host(self, url: str) -> str:
        """A paging URL without its token, refused if it points elsewhere (the token
        would follow it)."""
        target = urllib.parse.urlsplit(url)
        base = urllib.parse.urlsplit(self.base_url)
        if target.netloc and (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise ExchangeError(f"{self.name}: the next page is on another host ({target.netloc})")
        return _without_token(url)

    def _token(self) -> dict[str, str]:
        return {"access_token": self.credentials["access_token"]}

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        start = int(cursor.get("start", since_seconds(self.settings.get("since"))))
        resume = self.fresh(cursor) and cursor.get("stop") is not None
        stop = int(cursor["stop"]) if resume else int(self.clock())
        if stop <= start:
            return
        next_url: str | None = str(cursor["next"]) if resume else None
        while True:
            if next_url:
                response = self.http.request("GET", _with_token(next_url, self._token()))
                _refuse_bad_token(response)
                if 400 <= response.status_code < 500:
                    next_url = None  # an expired cursor: the range again
                    continue
            else:
                params: dict[str, Any] = {
                    **self._token(),
                    "start_time": start or None,
                    "stop_time": stop,
                    "limit": int(self.settings.get("page_size", 500)),
                    "fields": FIELDS,
                }
                if self.settings.get("types"):
                    params["types"] = ",".join(self.settings["types"])
                response = self.http.request(
                    "GET", f"/{self.privacy_group}/threat_updates/", params=params
                )
            _refuse_bad_token(response)
            expect_ok(response, f"GET /{self.privacy_group}/threat_updates/")
            try:
                doc = json.loads(response.content)
                data = doc["data"]
                if not isinstance(data, list):
                    raise TypeError("data is not a list")
            except (ValueError, KeyError, TypeError) as exc:
                raise ExchangeError(
                    f"{self.name}: the page is not threat_updates ({exc})"
                ) from None
            parsed = parse_updates(data, self.privacy_group, f"{self.name} page")
            following = (doc.get("paging") or {}).get("next")
            if following:
                next_url = self._same_host(str(following))
                yield Page(
                    parsed,
                    {"start": start, "stop": stop, "next": next_url, "next_at": self.clock()},
                )
                continue
            yield Page(parsed, {"start": stop}, done=True)
            return

    def send_feedback(self, item: FeedbackItem) -> list[FeedbackSent]:
        descriptors = [str(d) for d in item.extra.get("descriptors") or []]
        if not descriptors:
            raise BadInput("the entry has no ThreatExchange descriptor to react to")
        reaction = "HELPFUL" if item.affirmative else "NOT_HELPFUL"
        sent = []
        for descriptor in descriptors:
            path = f"/{descriptor}"
            expect_ok(
                self.http.request("POST", path, params=self._token(), data={"reactions": reaction}),
                f"POST {path}",
            )
            sent.append(FeedbackSent("POST", path, reaction))
        return sent

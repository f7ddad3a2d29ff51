"""StopNCII's hash API, as python-threatexchange's StopNCII client speaks it.

`GET {base}/FetchHashes?startTimestamp=..&pageSize=..[&nextPageToken=..]` with the
`Ocp-Apim-Subscription-Key` header and the FetchHashes function key in
`x-functions-key` answers `{count, nextPageToken, nextSetTimestamp, hasMoreRecords,
hashRecords}` (the `stopncii` format). Each record is the whole current state of its
hash, so re-reading a page is harmless. The cursor keeps the run's `startTimestamp`
and the page token until the last page (`hasMoreRecords: false`) is stored; only then
does it move to `nextSetTimestamp`. A token the server no longer accepts (or one older
than `cursor_max_age_s`, default one hour) restarts the run from its start timestamp,
so nothing is skipped. `Withdrawn` and `Deleted` records tombstone their entry.
Feedback: `POST {base}/SubmitFeedback` (`hashFeedbacks` of `feedbackValue` Blocked or
NotBlocked) with its own function key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ridgeline.errors import BadInput
from ridgeline.exchange import stopncii as stopncii_format
from ridgeline.exchange.live.base import Client, Cursor, FeedbackItem, FeedbackSent, Page
from ridgeline.exchange.live.errors import ExchangeError
from ridgeline.exchange.live.http import expect_ok
from ridgeline.exchange.live.ncmec import since_seconds

#: python-threatexchange's `StopNCIIAPI.DEFAULT_START_TIME`.
DEFAULT_START = 10


class StopNCIIClient(Client):
    kind = "stopncii"
    format = stopncii_format.NAME
    required_credentials = ("subscription_key", "fetch_function_key")
    optional_credentials = ("feedback_function_key",)
    settings_keys = ("since", "page_size")
    default_base_url = "https://api.stopncii.org/v1"
    default_cursor_max_age_s = 3600.0

    def http_options(self) -> dict[str, Any]:
        return {"headers": {"Ocp-Apim-Subscription-Key": self.credentials["subscription_key"]}}

    def pages(self, cursor: Cursor) -> Iterator[Page]:
        start = int(cursor.get("start", since_seconds(self.settings.get("since")) or DEFAULT_START))
        token: str | None = (
            str(cursor["token"]) if self.fresh(cursor, "token", "token_at") else None
        )
        size = int(self.settings.get("page_size", 800))
        fetch_key = {"x-functions-key": self.credentials["fetch_function_key"]}
        while True:
            params: dict[str, Any] = {"startTimestamp": start, "pageSize": size}
            if token:
                params["nextPageToken"] = token
            response = self.http.request("GET", "/FetchHashes", params=params, headers=fetch_key)
            if token and 400 <= response.status_code < 500:
                token = None  # an expired token: the run again, from its start timestamp
                continue
            expect_ok(response, "GET /FetchHashes")
            try:
                doc = json.loads(response.content)
                parsed = stopncii_format.parse(response.content, f"{self.name} page")
            except (ValueError, BadInput) as exc:
                raise ExchangeError(
                    f"{self.name}: the page is not FetchHashes JSON ({exc})"
                ) from None
            if not isinstance(doc, dict):
                raise ExchangeError(f"{self.name}: the page is not a FetchHashes object")
            following = doc.get("nextPageToken") or None
            if doc.get("hasMoreRecords") and following:
                token = str(following)
                yield Page(parsed, {"start": start, "token": token, "token_at": self.clock()})
                continue
            next_set = doc.get("nextSetTimestamp")
            watermark = int(next_set) if isinstance(next_set, int | float) and next_set else start
            yield Page(parsed, {"start": max(start, watermark)}, done=True)
            return

    def send_feedback(self, item: FeedbackItem) -> list[FeedbackSent]:
        key = self.credentials.get("feedback_function_key")
        if not key:
            raise BadInput(
                f"source {self.name!r} has no feedback_function_key (StopNCII gives each "
                "endpoint its own function key)"
            )
        value = "Blocked" if item.affirmative else "NotBlocked"
        feedbacks = [
            {
                "hashValue": hash_value,
                "feedbackValue": value,
                "tags": [item.reason] if item.reason else [],
            }
            for signal, hash_value in item.signals.items()
            if signal in ("pdq", "md5")
        ]
        if not feedbacks:
            raise BadInput("the entry has no PDQ or video MD5 for StopNCII feedback")
        expect_ok(
            self.http.request(
                "POST",
                "/SubmitFeedback",
                json={"count": len(feedbacks), "hashFeedbacks": feedbacks},
                headers={"x-functions-key": key},
            ),
            "POST /SubmitFeedback",
        )
        return [FeedbackSent("POST", "/SubmitFeedback", f"{value} x{len(feedbacks)}")]

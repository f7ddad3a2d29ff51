"""Reviewer wellness, built into the queue so every UI gets it.

- Media are rendered greyscale and strongly blurred by default (`render_for_review`);
  the unblurred view is an explicit, logged action (`queue.unblur`).
- Review time is the union of the intervals items were open for a reviewer (from
  being served to the verdict, an open item counting at most `max_item_minutes`).
  After `break_after_minutes` of it without a pause of `break_minutes`, the queue
  refuses with "take a break until HH:MM UTC".
- A daily exposure cap: items served per UTC day.
- Times come from the caller (`now=`), so tests run on an explicit clock.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ridgeline.errors import BadInput, DecompressionBomb, PermissionDenied
from ridgeline.review.models import Reviewer, ReviewView
from ridgeline.timeutil import as_utc, isoformat

ENV_PREFIX = "RIDGELINE_REVIEW_"


class BreakRequired(PermissionDenied):
    """The reviewer has reviewed long enough without a pause."""

    code = "break_required"

    def __init__(self, message: str, until: dt.datetime) -> None:
        super().__init__(message)
        self.until = until


class ExposureCapReached(PermissionDenied):
    """The reviewer has seen their daily number of items."""

    code = "exposure_cap"

    def __init__(self, message: str, until: dt.datetime) -> None:
        super().__init__(message)
        self.until = until


@dataclass(frozen=True)
class WellnessPolicy:
    """Global defaults; a reviewer's own settings override them."""

    #: Minutes may be fractions (`RIDGELINE_REVIEW_BREAK_AFTER_MINUTES=0.05`: tests).
    break_after_minutes: float = 120
    break_minutes: float = 15
    daily_cap: int = 300
    #: An item left open counts as review time for at most this long.
    max_item_minutes: float = 30

    @classmethod
    def from_env(cls) -> WellnessPolicy:
        """Defaults overridden by `RIDGELINE_REVIEW_BREAK_AFTER_MINUTES`,
        `..._BREAK_MINUTES`, `..._DAILY_CAP`, `..._MAX_ITEM_MINUTES`."""
        values: dict[str, float] = {}
        for name in ("break_after_minutes", "break_minutes", "daily_cap", "max_item_minutes"):
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw:
                whole = name == "daily_cap"
                try:
                    number: float = int(raw) if whole else float(raw)
                except ValueError:
                    kind = "a whole number" if whole else "a number of minutes"
                    raise BadInput(
                        f"{ENV_PREFIX + name.upper()} must be {kind}, not {raw!r}"
                    ) from None
                if number <= 0:
                    raise BadInput(f"{ENV_PREFIX + name.upper()} must be positive")
                values[name] = number
        return cls(**values)  # type: ignore[arg-type]

    def for_reviewer(self, reviewer: Reviewer) -> WellnessPolicy:
        """This policy with the reviewer's own limits applied."""
        return replace(
            self,
            break_after_minutes=reviewer.break_after_minutes or self.break_after_minutes,
            break_minutes=reviewer.break_minutes or self.break_minutes,
            daily_cap=reviewer.daily_cap or self.daily_cap,
        )


@dataclass
class ExposureStatus:
    """Where a reviewer stands: items today, review time since the last break."""

    reviewer: str
    items_today: int
    daily_cap: int
    review_minutes: float
    break_after_minutes: float
    break_until: dt.datetime | None
    cap_reached: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "items_today": self.items_today,
            "daily_cap": self.daily_cap,
            "review_minutes_since_break": round(self.review_minutes, 1),
            "break_after_minutes": self.break_after_minutes,
            "break_until": isoformat(self.break_until),
            "cap_reached": self.cap_reached,
        }


def _day_start(now: dt.datetime) -> dt.datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def exposure_status(
    session: Session, reviewer: Reviewer, *, now: dt.datetime, policy: WellnessPolicy | None = None
) -> ExposureStatus:
    """Compute the reviewer's exposure and review time at `now`."""
    now = as_utc(now)
    pol = (policy or WellnessPolicy.from_env()).for_reviewer(reviewer)
    max_item = dt.timedelta(minutes=pol.max_item_minutes)
    pause = dt.timedelta(minutes=pol.break_minutes)
    since = min(_day_start(now), now - dt.timedelta(hours=24))
    views = list(
        session.scalars(
            select(ReviewView)
            .where(ReviewView.reviewer == reviewer.name, ReviewView.started_at >= since)
            .order_by(ReviewView.started_at, ReviewView.id)
        )
    )
    day = _day_start(now)
    items_today = len({v.entry_id for v in views if as_utc(v.started_at) >= day})
    # Merge the open intervals, then sum the stretch since the last long-enough pause.
    intervals: list[tuple[dt.datetime, dt.datetime]] = []
    for v in views:
        start = as_utc(v.started_at)
        end = as_utc(v.ended_at) if v.ended_at is not None else min(now, start + max_item)
        end = min(max(end, start), start + max_item)
        if intervals and start <= intervals[-1][1]:
            intervals[-1] = (intervals[-1][0], max(intervals[-1][1], end))
        else:
            intervals.append((start, end))
    worked = dt.timedelta()
    last_end: dt.datetime | None = None
    for start, end in intervals:
        if last_end is not None and start - last_end >= pause:
            worked = dt.timedelta()
        worked += end - start
        last_end = end
    if last_end is not None and now - last_end >= pause:
        worked = dt.timedelta()
    break_until = None
    if last_end is not None and worked >= dt.timedelta(minutes=pol.break_after_minutes):
        break_until = last_end + pause
    return ExposureStatus(
        reviewer=reviewer.name,
        items_today=items_today,
        daily_cap=pol.daily_cap,
        review_minutes=worked.total_seconds() / 60,
        break_after_minutes=pol.break_after_minutes,
        break_until=break_until,
        cap_reached=items_today >= pol.daily_cap,
    )


def check_wellness(
    session: Session, reviewer: Reviewer, *, now: dt.datetime, policy: WellnessPolicy | None = None
) -> ExposureStatus:
    """Refuse (`BreakRequired`, `ExposureCapReached`) when the reviewer must stop."""
    status = exposure_status(session, reviewer, now=now, policy=policy)
    if status.break_until is not None and status.break_until > as_utc(now):
        hours, minutes = divmod(int(status.review_minutes), 60)
        raise BreakRequired(
            f"reviewer {reviewer.name!r} has reviewed for {hours}h {minutes:02d}m without a "
            f"break: take a break until {status.break_until:%H:%M} UTC",
            status.break_until,
        )
    if status.cap_reached:
        reopen = _day_start(as_utc(now)) + dt.timedelta(days=1)
        raise ExposureCapReached(
            f"reviewer {reviewer.name!r} has reached the daily exposure cap of "
            f"{status.daily_cap} items; the queue reopens at {reopen:%Y-%m-%d %H:%M} UTC",
            reopen,
        )
    return status


#: Longest side of a review rendering; larger media are scaled down first.
RENDER_MAX_SIDE = 1024


def render_for_review(
    image_bytes: bytes,
    unblurred: bool = False,
    *,
    colour: bool = False,
    fmt: str = "PNG",
    max_side: int = RENDER_MAX_SIDE,
) -> bytes:
    """A safe-to-serve rendering: greyscale and strongly blurred unless asked otherwise.

    `unblurred=True` keeps greyscale; `colour=True` is a further explicit option. Callers
    that unblur must log it (`queue.unblur` does).
    """
    fmt = fmt.upper()
    if fmt not in ("PNG", "JPEG"):
        raise BadInput(f"render format must be PNG or JPEG, not {fmt!r}")
    try:
        with Image.open(io.BytesIO(image_bytes)) as img:
            img.load()
            frame = ImageOps.exif_transpose(img) or img
            frame = frame.convert("RGB")
    except Image.DecompressionBombError:
        raise DecompressionBomb("image is too large to render for review") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadInput("evidence is not an image that can be rendered for review") from None
    frame.thumbnail((max_side, max_side))
    if not colour:
        frame = frame.convert("L")
    if not unblurred:
        radius = max(8.0, max(frame.size) / 20)
        frame = frame.filter(ImageFilter.GaussianBlur(radius))
    out = io.BytesIO()
    frame.save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()

"""Response models of the matching routes (`/v1/match`, `/v1/lookup`).

They document in `/openapi.json` exactly what `ExplainedMatch.to_json` and the routes
write; the routes answer with that JSON directly (the fast path must give the same
bytes), so these models describe the answers rather than re-serialise them.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from ridgeline.service.schemas import Body, Classification
from ridgeline.signals.base import SignalValue


class ProvenanceOut(Body):
    source: str | None
    origin_list: str | None
    origin_member: str | None
    origin_entry_id: str | None
    import_batch: str | None
    submitted_by: str | None


class MatchOut(Body):
    """One explained match (`ridgeline.matching.ExplainedMatch.to_json`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    list_: str = Field(alias="list", description="Name of the matched list")
    list_id: int
    purpose: str = Field(description="block, allow or self-submitted")
    entry_id: int
    signal: str
    value: str = Field(description="The canonical query hash that matched")
    variant: str = Field(description='"" as given, else a dihedral variant or frame label')
    distance: int | float
    threshold: int | float
    classifications: list[Classification]
    provenance: ProvenanceOut
    held: bool = Field(description="Held by flood control (fires no actions)")
    series: list[str] | None = Field(
        default=None,
        description="The victim series the entry or file belongs to (`DATABASE/SERIES`), "
        "present when the victims registry links one",
    )
    identification: str | None = Field(
        default=None,
        description='"series S, victim identified on DATE by AGENCY" or "series S, victim '
        'not identified: possible ongoing abuse" (with "; actively traded" from the fifth '
        "occasion); present with `series`",
    )

    review: bool | None = Field(
        default=None,
        description="Present (true) on matches in a self-submitted list: flag the content "
        "for human review, never act on it automatically",
    )


class ActionOut(Body):
    """What a match set off (`ridgeline.service.effects`): `webhook` deliveries queued
    for lists with webhooks, or a `report` draft for lists with the report action."""

    action: str = Field(description="webhook or report")
    lists: list[str]
    deliveries: list[int] | None = Field(default=None, description="webhook delivery ids")
    report_id: int | None = Field(default=None, description="the CyberTipline draft's id")


class LookupOut(Body):
    """`GET /v1/lookup`: the canonical hash and its matches (`actions` only when a
    match is on a list with webhooks)."""

    signal: str
    value: str
    matches: list[MatchOut]
    actions: list[ActionOut] | None = None


class HashesMatchOut(Body):
    """`POST /v1/match` with JSON hashes: canonical hashes and their matches."""

    signals: dict[str, str | list[str]]
    matches: list[MatchOut]
    actions: list[ActionOut]


class UploadMatchOut(Body):
    """`POST /v1/match` with a file or URL: its signals, its matches on every signal it
    has, and why a signal could not be computed (`error`, e.g. pixels that do not decode)."""

    kind: str | None
    media_type: str | None
    size: int | None
    signals: dict[str, SignalValue]
    matches: list[MatchOut]
    actions: list[ActionOut]
    error: str | None

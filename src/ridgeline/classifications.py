"""Classification schemes and labels from CONVENTIONS.md; a label always carries its scheme."""

from __future__ import annotations

from ridgeline.errors import BadInput

SCHEMES: dict[str, dict[str, str]] = {
    "industry": {
        "A1": "prepubescent, sex act",
        "A2": "prepubescent, lascivious exhibition",
        "B1": "pubescent, sex act",
        "B2": "pubescent, lascivious exhibition",
    },
    "uk": {"A": "category A", "B": "category B", "C": "category C"},
    "vics-us": {
        "0": "non-pertinent",
        "1": "child abuse material",
        "2": "child exploitive (non-CAM) / age difficult",
        "3": "CGI/animation, child exploitive",
        "4": "comparison images",
    },
    #: Project VIC Canada profile (the same five codes as the US one).
    "vics-ca": {
        "0": "non-pertinent",
        "1": "child sexual abuse material",
        "2": "child exploitive (non-CSAM) / age difficult",
        "3": "CGI/animation, child exploitive",
        "4": "comparison images",
    },
    #: Project VIC UK profile (CAID): categories A, B and C as codes 1-3.
    "vics-uk": {
        "0": "non-pertinent",
        "1": "category A",
        "2": "category B",
        "3": "category C",
        "4": "comparison images / non-indecent",
    },
    "ridgeline": {
        "csam": "CSAM",
        "exploitative": "exploitative",
        "not-csam": "not CSAM",
        "unknown": "unknown",
    },
}


#: Labels that must never make an entry a matchable block entry: non-pertinent and
#: comparison records, and what a reviewer called not CSAM. Every other label of a
#: scheme is listable.
NOT_LISTABLE: dict[str, frozenset[str]] = {
    "vics-us": frozenset({"0", "4"}),
    "vics-ca": frozenset({"0", "4"}),
    "vics-uk": frozenset({"0", "4"}),
    "ridgeline": frozenset({"not-csam"}),
}
#: VICS category profile (from the context URL) -> scheme its codes belong to.
VICS_PROFILES: dict[str, str] = {
    "US": "vics-us",
    "DEFAULT": "vics-us",
    "CA": "vics-ca",
    "CANADA": "vics-ca",
    "UK": "vics-uk",
    "GB": "vics-uk",
    "CAID": "vics-uk",
}
#: Scheme -> the profile name an export writes in its context URL.
PROFILE_OF_SCHEME: dict[str, str] = {"vics-us": "US", "vics-ca": "CA", "vics-uk": "UK"}


def is_listable(classifications: list[dict[str, str]]) -> bool:
    """Whether a record with these labels may become a block entry.

    Unlabelled records are listable (most files carry no labels); a labelled record is
    listable when at least one of its labels is.
    """
    if not classifications:
        return True
    return any(
        c.get("label") not in NOT_LISTABLE.get(str(c.get("scheme")), frozenset())
        for c in classifications
    )


def validate(scheme: str, label: str) -> dict[str, str]:
    """`{"scheme", "label"}` in canonical spelling, or a clear error."""
    scheme_key = str(scheme).strip().lower()
    if scheme_key not in SCHEMES:
        raise BadInput(
            f"unknown classification scheme {scheme!r}; expected one of {', '.join(SCHEMES)}"
        )
    labels = SCHEMES[scheme_key]
    text = str(label).strip()
    for known in labels:
        if known.lower() == text.lower():
            return {"scheme": scheme_key, "label": known}
    raise BadInput(f"unknown {scheme_key} label {label!r}; expected one of {', '.join(labels)}")


def parse(text: str) -> dict[str, str]:
    """Parse `scheme:label` (as written on the command line and in CSV files)."""
    if ":" not in text:
        raise BadInput(f"classification {text!r} needs its scheme, as scheme:label")
    scheme, label = text.split(":", 1)
    return validate(scheme, label)

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
    "ridgeline": {
        "csam": "CSAM",
        "exploitative": "exploitative",
        "not-csam": "not CSAM",
        "unknown": "unknown",
    },
}


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

"""Parse partner XML safely: no DTDs, no entities, namespaces stripped.

Entity expansion ("billion laughs") and external entities are refused before the
parser sees the document, because a hash file never needs them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ridgeline.errors import BadInput

_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_xml(data: bytes, what: str) -> ET.Element:
    """The root element, or `BadInput` naming the line and column of the problem."""
    match = _FORBIDDEN.search(data)
    if match:
        line = data.count(b"\n", 0, match.start()) + 1
        raise BadInput(
            f"{what}: line {line}: XML with a DTD or entity declarations is refused "
            "(hash files never need them, and they enable entity-expansion attacks)"
        )
    parser = ET.XMLParser()
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        line, column = exc.position
        raise BadInput(f"{what}: malformed XML at line {line}, column {column + 1}") from None
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def child_text(element: ET.Element, tag: str) -> str | None:
    """Stripped text of the first child called `tag`, or None if missing or empty."""
    child = element.find(tag)
    if child is None or child.text is None:
        return None
    text = child.text.strip()
    return text or None

"""Parse partner XML safely: no DTDs, no entities, namespaces stripped.

Entity expansion ("billion laughs") and external entities are refused before the
parser sees the document, because a hash file never needs them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.parsers import expat

from ridgeline.errors import BadInput

_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


#: Longest text or attribute value of one element (hashes and ids are far shorter).
MAX_FIELD_CHARS = 4096


class _Refused(Exception):
    pass


def _refuse(*_args: object) -> None:
    raise _Refused


def _refuse_external(*_args: object) -> int:
    raise _Refused


def _refuse_declarations(data: bytes, what: str) -> None:
    """Refuse any DTD or entity declaration, in whatever encoding the document uses.

    A byte search missed a UTF-16 DOCTYPE (issue 17 item 11), so expat, which decodes
    the document as the parser will, reports the declarations instead.
    """
    checker = expat.ParserCreate()
    checker.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    checker.StartDoctypeDeclHandler = _refuse
    checker.EntityDeclHandler = _refuse
    checker.ExternalEntityRefHandler = _refuse_external
    try:
        checker.Parse(data, True)
    except _Refused:
        raise BadInput(
            f"{what}: line {checker.CurrentLineNumber}: XML with a DTD or entity declarations "
            "is refused (hash files never need them, and they enable entity-expansion attacks)"
        ) from None
    except expat.ExpatError:
        return  # malformed: the real parser below reports where
    except (ValueError, LookupError) as exc:  # an encoding expat cannot read (UTF-32, "UTF-6")
        raise BadInput(f"{what}: {exc}") from None


def parse_xml(data: bytes, what: str) -> ET.Element:
    """The root element, or `BadInput` naming the line and column of the problem."""
    match = _FORBIDDEN.search(data)
    if match:
        line = data.count(b"\n", 0, match.start()) + 1
        raise BadInput(
            f"{what}: line {line}: XML with a DTD or entity declarations is refused "
            "(hash files never need them, and they enable entity-expansion attacks)"
        )
    _refuse_declarations(data, what)
    parser = ET.XMLParser()
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        line, column = exc.position
        raise BadInput(f"{what}: malformed XML at line {line}, column {column + 1}") from None
    except (ValueError, LookupError) as exc:
        raise BadInput(f"{what}: {exc}") from None
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


def oversized(element: ET.Element, limit: int = MAX_FIELD_CHARS) -> str | None:
    """Why an element (with its children) carries a field too long to keep, or None."""
    for item in element.iter():
        for value in (item.text, *item.attrib.values()):
            if value is not None and len(value) > limit:
                return f"<{item.tag}> holds {len(value)} characters; at most {limit} are read"
    return None

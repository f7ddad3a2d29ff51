"""A small declarative engine for the CyberTipline documents (SPEC.md sections 4-5).

Every element type of the public schema is a frozen dataclass (see `model.py`) whose
fields carry their XML name, kind and rules in field metadata; field order is the
schema's element order. One engine then reads and writes XML and JSON, checks the
structure of incoming XML and validates the generic rules (required, enumerations,
patterns, lengths), so the rules live in one place and the test server, the CLI and
the API all apply the same ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Kind = Literal["el", "attr", "text", "flag"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One violation: where (a path of XML names with 0-based indices) and what, in words."""

    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "severity": self.severity}


def _meta(
    xml: str,
    kind: Kind,
    *,
    required: bool = False,
    enum: Iterable[str] | None = None,
    pattern: str | None = None,
    max_len: int | None = None,
    nonblank: bool = False,
    hint: str | None = None,
) -> dict[str, Any]:
    return {
        "xml": xml,
        "kind": kind,
        "required": required,
        "enum": tuple(enum) if enum is not None else None,
        "pattern": re.compile(pattern) if pattern else None,
        "max_len": max_len,
        "nonblank": nonblank,
        "hint": hint,
    }


def el(xml: str, **rules: Any) -> Any:
    """A child element that occurs at most once (None when absent)."""
    return field(default=None, metadata=_meta(xml, "el", **rules))


def many(xml: str, **rules: Any) -> Any:
    """A repeated child element (a tuple; `required=True` means at least one)."""
    return field(default=(), metadata=_meta(xml, "el", **rules))


def attr(xml: str, **rules: Any) -> Any:
    """An XML attribute."""
    return field(default=None, metadata=_meta(xml, "attr", **rules))


def text(**rules: Any) -> Any:
    """The element's own text content (elements with attributes and a value)."""
    return field(default=None, metadata=_meta("value", "text", **rules))


def flag(xml: str) -> Any:
    """An annotation: an empty element (or `true`) when set, absent otherwise."""
    return field(default=False, metadata=_meta(xml, "flag"))


class Node:
    """Base of every schema element type."""

    __slots__ = ()
    #: Exactly one child element must be present (internetDetails).
    CHOICE: ClassVar[bool] = False
    #: xs:all: children in any order (annotation groups).
    ANY_ORDER: ClassVar[bool] = False
    #: Pairs of fields that may not both be present (an xs:choice inside a sequence).
    EXCLUSIVE: ClassVar[tuple[tuple[str, str], ...]] = ()


SCALARS = (str, int, float, bool, dt.datetime, dt.date)


@dataclass(frozen=True, slots=True)
class Spec:
    """One field of a node type, resolved once."""

    name: str
    xml: str
    kind: Kind
    typ: type
    many: bool
    required: bool
    enum: frozenset[str] | None
    enum_text: str | None
    pattern: re.Pattern[str] | None
    max_len: int | None
    nonblank: bool
    hint: str | None

    @property
    def is_node(self) -> bool:
        return isinstance(self.typ, type) and issubclass(self.typ, Node)


@dataclass(frozen=True, slots=True)
class Layout:
    """The resolved fields of a node type, split by kind."""

    cls: type
    specs: tuple[Spec, ...]
    attrs: tuple[Spec, ...]
    text: Spec | None
    children: tuple[Spec, ...]
    by_xml: dict[str, Spec]
    position: dict[str, int]


_LAYOUTS: dict[type, Layout] = {}


def _resolve(annotation: Any) -> tuple[type, bool]:
    """(element type, repeated?) of an annotation like `tuple[Email, ...]` or `str | None`."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        inner, _ = _resolve(typing.get_args(annotation)[0])
        return inner, True
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _resolve(args[0])
    return annotation, False


def layout(cls: type) -> Layout:
    """The cached layout of a node type."""
    found = _LAYOUTS.get(cls)
    if found is not None:
        return found
    hints = typing.get_type_hints(cls)
    specs: list[Spec] = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        typ, repeated = _resolve(hints[f.name])
        enum = m["enum"]
        specs.append(
            Spec(
                name=f.name,
                xml=m["xml"],
                kind=m["kind"],
                typ=typ,
                many=repeated,
                required=m["required"],
                enum=frozenset(enum) if enum else None,
                enum_text=", ".join(repr(e) for e in enum) if enum else None,
                pattern=m["pattern"],
                max_len=m["max_len"],
                nonblank=m["nonblank"],
                hint=m["hint"],
            )
        )
    children = tuple(s for s in specs if s.kind in ("el", "flag"))
    text_specs = [s for s in specs if s.kind == "text"]
    found = Layout(
        cls=cls,
        specs=tuple(specs),
        attrs=tuple(s for s in specs if s.kind == "attr"),
        text=text_specs[0] if text_specs else None,
        children=children,
        by_xml={s.xml: s for s in specs if s.kind != "text"},
        position={s.xml: i for i, s in enumerate(children)},
    )
    _LAYOUTS[cls] = found
    return found


# ---------------------------------------------------------------- scalar text forms


def format_scalar(value: Any) -> str:
    """The XML text of a scalar value."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


_BOOL = {"true": True, "1": True, "false": False, "0": False}


def parse_scalar(typ: type, raw: str) -> Any:
    """A scalar from its XML text; ValueError with a readable message if it is not one."""
    if typ is str:
        return raw
    value = raw.strip()
    if typ is bool:
        if value not in _BOOL:
            raise ValueError(f"expected true or false, got {value!r}")
        return _BOOL[value]
    if typ is int:
        if not re.fullmatch(r"[+-]?[0-9]+", value):
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value)
    if typ is float:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if typ is dt.datetime:
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"expected a date and time like 2026-01-31T13:45:00-05:00, got {value!r}"
            ) from None
    if typ is dt.date:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected a date like 2010-01-31, got {value!r}") from None
    raise TypeError(typ)  # pragma: no cover - layouts only use the scalar types above


def _json_scalar(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


# ---------------------------------------------------------------- XML writing


def _esc_text(value: str) -> str:
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    return value


def _esc_attr(value: str) -> str:
    value = _esc_text(value)
    if '"' in value:
        value = value.replace('"', "&quot;")
    if "\n" in value or "\r" in value or "\t" in value:
        value = value.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    return value


def write_node(node: Node, tag: str, out: list[str]) -> None:
    """Append the XML of `node` as element `tag` to `out`, children in schema order."""
    lay = _LAYOUTS.get(type(node)) or layout(type(node))
    head = "<" + tag
    for s in lay.attrs:
        v = getattr(node, s.name)
        if v is not None:
            head += f' {s.xml}="{_esc_attr(format_scalar(v))}"'
    body: list[str] = []
    if lay.text is not None:
        v = getattr(node, lay.text.name)
        if v is not None:
            body.append(_esc_text(format_scalar(v)))
    for s in lay.children:
        v = getattr(node, s.name)
        if s.kind == "flag":
            if v:
                body.append(f"<{s.xml}>true</{s.xml}>")
            continue
        if v is None or v == ():
            continue
        for item in v if s.many else (v,):
            if s.is_node:
                write_node(item, s.xml, body)
            else:
                body.append(f"<{s.xml}>{_esc_text(format_scalar(item))}</{s.xml}>")
    if body:
        out.append(head + ">")
        out.extend(body)
        out.append(f"</{tag}>")
    else:
        out.append(head + "/>")


# ---------------------------------------------------------------- JSON


def to_json(node: Node) -> dict[str, Any]:
    """A JSON object keyed by the schema's own names (text content under "value")."""
    lay = _LAYOUTS.get(type(node)) or layout(type(node))
    out: dict[str, Any] = {}
    for s in lay.specs:
        v = getattr(node, s.name)
        if v is None or v == () or (s.kind == "flag" and not v):
            continue
        if s.many:
            out[s.xml] = [to_json(i) if s.is_node else _json_scalar(i) for i in v]
        elif s.is_node:
            out[s.xml] = to_json(v)
        else:
            out[s.xml] = _json_scalar(v)
    return out


def _json_value(s: Spec, raw: Any, path: str, problems: list[Problem]) -> Any:
    if s.is_node:
        if not isinstance(raw, dict):
            problems.append(Problem(path, "expected an object"))
            return None
        return _from_json_full(s.typ, raw, path, problems)
    if s.typ is bool and isinstance(raw, bool):
        return raw
    if s.typ is int and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if s.typ is float and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        try:
            return parse_scalar(s.typ, raw)
        except ValueError as exc:
            problems.append(Problem(path, str(exc)))
            return None
    problems.append(Problem(path, f"expected {_type_word(s.typ)}, got {type(raw).__name__}"))
    return None


def _type_word(typ: type) -> str:
    return {
        str: "text",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        dt.datetime: "a date and time",
        dt.date: "a date",
    }.get(typ, "an object")


#: Per node type: JSON key -> (spec, is a node type) — resolved once, read per key.
_JSON_KEYS: dict[type, dict[str, tuple[Spec, bool]]] = {}


def _json_keys(cls: type) -> dict[str, tuple[Spec, bool]]:
    found = _JSON_KEYS.get(cls)
    if found is None:
        lay = layout(cls)
        found = {s.xml: (s, s.is_node) for s in lay.specs if s.kind != "text"}
        if lay.text is not None:
            found["value"] = (lay.text, False)
        _JSON_KEYS[cls] = found
    return found


class _Slow(Exception):
    """The fast JSON reader met something it leaves to the full one (any problem)."""


_SLOW = _Slow()


#: Per node type: JSON key -> (how to read it, field name, field type, spec), for the
#: fast reader: 0 flag, 1 list of nodes, 2 list of text, 3 other list, 4 node, 5 text,
#: 6 true/false, 7 other scalar.
_FAST_KEYS: dict[type, dict[str, tuple[int, str, Any, Spec]]] = {}


def _fast_keys(cls: type) -> dict[str, tuple[int, str, Any, Spec]]:
    found = _FAST_KEYS.get(cls)
    if found is None:
        found = {}
        for key, (s, is_node) in _json_keys(cls).items():
            if s.kind == "flag":
                mode = 0
            elif s.many:
                mode = 1 if is_node else 2 if s.typ is str else 3
            else:
                mode = 4 if is_node else 5 if s.typ is str else 6 if s.typ is bool else 7
            found[key] = (mode, s.name, s.typ, s)
        _FAST_KEYS[cls] = found
    return found


def _from_json_fast(cls: type, data: dict[str, Any]) -> Any:
    """`from_json` for a document without problems: the same nodes, no paths built.

    Raises `_Slow` at the first thing that would be a problem, or that the full reader
    answers in a way this one does not copy; `from_json` then starts over with that."""
    keys = _FAST_KEYS.get(cls) or _fast_keys(cls)
    kwargs: dict[str, Any] = {}
    for key, raw in data.items():
        found = keys.get(key)
        if found is None:
            raise _SLOW
        if raw is None:
            continue
        mode, name, typ, s = found
        if mode == 5:
            if raw.__class__ is not str:
                raise _SLOW
            kwargs[name] = raw
        elif mode == 4:
            if raw.__class__ is not dict:
                raise _SLOW
            kwargs[name] = _from_json_fast(typ, raw)
        elif mode == 1:
            if raw.__class__ is not list:
                raw = [raw]
            nodes = []
            for item in raw:
                if item.__class__ is not dict:
                    raise _SLOW
                nodes.append(_from_json_fast(typ, item))
            kwargs[name] = tuple(nodes)
        elif mode == 0:
            if raw is True or raw == "true" or raw == "":
                kwargs[name] = True
            elif raw is not False:
                raise _SLOW
        elif mode == 6 and raw.__class__ is bool:
            kwargs[name] = raw
        elif mode == 2 or mode == 3:
            if raw.__class__ is not list:
                raw = [raw]
            if mode == 2 and all(item.__class__ is str for item in raw):
                kwargs[name] = tuple(raw)
                continue
            scratch: list[Problem] = []
            values = tuple(
                v for item in raw if (v := _json_value(s, item, "", scratch)) is not None
            )
            if scratch:
                raise _SLOW
            kwargs[name] = values
        else:
            scratch = []
            value = _json_value(s, raw, "", scratch)
            if scratch:
                raise _SLOW
            if value is not None:
                kwargs[name] = value
    return cls(**kwargs)


def from_json(cls: type, data: dict[str, Any], path: str, problems: list[Problem]) -> Any:
    """Build `cls` from its JSON object; unknown keys and wrong types go to `problems`.

    Most documents have no problem: they are read without building a path per field
    (`_from_json_fast`); the others are read again by the full reader, which lists
    every problem with its path."""
    try:
        return _from_json_fast(cls, data)
    except _Slow:
        return _from_json_full(cls, data, path, problems)


def _from_json_full(cls: type, data: dict[str, Any], path: str, problems: list[Problem]) -> Any:
    keys = _JSON_KEYS.get(cls) or _json_keys(cls)
    kwargs: dict[str, Any] = {}
    for key, raw in data.items():
        found = keys.get(key)
        if found is None:
            known = ", ".join(sp.xml for sp in layout(cls).specs)
            problems.append(
                Problem(f"{path}/{key}", f"unknown field {key!r} (known here: {known})")
            )
            continue
        if raw is None:
            continue
        s, is_node = found
        if s.kind == "flag":
            if raw is True or raw == "true" or raw == "":
                kwargs[s.name] = True
            elif raw is not False:
                problems.append(
                    Problem(f"{path}/{key}", "an annotation is either set (true) or absent")
                )
            continue
        # The common cases (objects, plain text, true/false) are kept off the slow path;
        # everything else goes through `_json_value`, which the answers must equal.
        if s.many:
            if not isinstance(raw, list):
                raw = [raw]
            where = f"{path}/{key}"
            if is_node:
                nodes = []
                for i, item in enumerate(raw):
                    if isinstance(item, dict):
                        nodes.append(_from_json_full(s.typ, item, f"{where}[{i}]", problems))
                    else:
                        problems.append(Problem(f"{where}[{i}]", "expected an object"))
                kwargs[s.name] = tuple(nodes)
            elif s.typ is str and all(isinstance(item, str) for item in raw):
                kwargs[s.name] = tuple(raw)
            else:
                kwargs[s.name] = tuple(
                    v
                    for i, item in enumerate(raw)
                    if (v := _json_value(s, item, f"{where}[{i}]", problems)) is not None
                )
        elif is_node:
            if isinstance(raw, dict):
                kwargs[s.name] = _from_json_full(s.typ, raw, f"{path}/{key}", problems)
            else:
                problems.append(Problem(f"{path}/{key}", "expected an object"))
        elif (s.typ is str and isinstance(raw, str)) or (s.typ is bool and isinstance(raw, bool)):
            kwargs[s.name] = raw
        else:
            value = _json_value(s, raw, f"{path}/{key}", problems)
            if value is not None:
                kwargs[s.name] = value
    return cls(**kwargs)


# ---------------------------------------------------------------- XML reading


class XmlElement(typing.Protocol):
    """What the reader needs of an ElementTree element."""

    tag: Any
    text: str | None
    attrib: dict[str, str]

    def __iter__(self) -> typing.Iterator[XmlElement]: ...


_XSI = ("{http://www.w3.org/2001/XMLSchema-instance}", "xmlns")


def from_xml(cls: type, element: XmlElement, path: str, problems: list[Problem]) -> Any:
    """Build `cls` from an element, adding every structural problem to `problems`:
    unknown elements or attributes, wrong order, repeats of single elements, bad values."""
    lay = layout(cls)
    kwargs: dict[str, Any] = {}
    for name, raw in element.attrib.items():
        if name.startswith(_XSI) or name.startswith("xsi:") or "}" in name:
            continue
        s = lay.by_xml.get(name)
        if s is None or s.kind != "attr":
            problems.append(Problem(f"{path}/@{name}", f"unknown attribute {name!r}"))
            continue
        try:
            kwargs[s.name] = parse_scalar(s.typ, raw)
        except ValueError as exc:
            problems.append(Problem(f"{path}/@{name}", str(exc)))
    if lay.text is not None:
        raw_text = element.text
        if raw_text is not None and raw_text.strip():
            try:
                kwargs[lay.text.name] = parse_scalar(lay.text.typ, raw_text.strip())
            except ValueError as exc:
                problems.append(Problem(path, str(exc)))
    elif element.text is not None and element.text.strip():
        problems.append(Problem(path, "text is not allowed here, only child elements"))
    last = -1
    counts: dict[str, int] = {}
    collected: dict[str, list[Any]] = {}
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue  # comments and processing instructions
        s = lay.by_xml.get(tag)
        index = counts.get(tag, 0)
        counts[tag] = index + 1
        where = f"{path}/{tag}" + (f"[{index}]" if s is not None and s.many else "")
        if s is None or s.kind == "attr":
            expected = ", ".join(sp.xml for sp in lay.children)
            problems.append(
                Problem(where, f"unknown element {tag!r} here (allowed: {expected or 'none'})")
            )
            continue
        pos = lay.position[tag]
        if not cls.ANY_ORDER and pos < last:  # type: ignore[attr-defined]
            after = lay.children[last].xml
            problems.append(
                Problem(where, f"element {tag!r} is out of order: it must come before {after!r}")
            )
        last = max(last, pos)
        if index and not s.many:
            problems.append(Problem(where, f"element {tag!r} may occur only once here"))
            continue
        if s.kind == "flag":
            body = (child.text or "").strip()
            if body not in ("", "true"):
                problems.append(Problem(where, "an annotation is empty or 'true'"))
            else:
                kwargs[s.name] = True
            continue
        if s.is_node:
            value: Any = from_xml(s.typ, child, where, problems)
        else:
            if len(list(child)):
                problems.append(Problem(where, "child elements are not allowed here"))
            raw = child.text or ""
            if s.typ is not str and not raw.strip():
                problems.append(Problem(where, "empty value"))
                continue
            try:
                value = parse_scalar(s.typ, raw if s.typ is str else raw.strip())
            except ValueError as exc:
                problems.append(Problem(where, str(exc)))
                continue
        if s.many:
            collected.setdefault(s.name, []).append(value)
        else:
            kwargs[s.name] = value
    for name, values in collected.items():
        kwargs[name] = tuple(values)
    return cls(**kwargs)


# ---------------------------------------------------------------- generic validation


def check(node: Node, path: str, problems: list[Problem]) -> None:
    """Required elements, enumerations, patterns, lengths and choices, recursively."""
    cls = type(node)
    lay = _LAYOUTS.get(cls) or layout(cls)
    present = 0
    for s in lay.specs:
        v = getattr(node, s.name)
        if v is None or v == () or (v is False and s.kind == "flag"):
            if s.required:
                what = "attribute" if s.kind == "attr" else "element"
                where = f"{path}/@{s.xml}" if s.kind == "attr" else f"{path}/{s.xml}"
                if s.kind == "text":
                    where, what = path, "value"
                problems.append(Problem(where, f"{_label(s)} is required ({what} missing)"))
            continue
        present += 1
        if s.kind == "flag":
            continue
        where = (
            f"{path}/@{s.xml}"
            if s.kind == "attr"
            else path
            if s.kind == "text"
            else path + "/" + s.xml
        )
        if s.is_node:
            if s.many:
                for i, item in enumerate(v):
                    check(item, f"{where}[{i}]", problems)
            else:
                check(v, where, problems)
            continue
        if s.typ is not str:
            continue
        if s.many:
            for i, item in enumerate(v):
                _check_text(s, item, f"{where}[{i}]", problems)
        else:
            _check_text(s, v, where, problems)
    if cls.CHOICE and present != 1:
        names = ", ".join(s.xml for s in lay.children)
        problems.append(Problem(path, f"exactly one of {names} is needed here, found {present}"))
    for a, b in cls.EXCLUSIVE:
        if getattr(node, a) not in (None, (), False) and getattr(node, b) not in (None, (), False):
            xa, xb = lay_xml(lay, a), lay_xml(lay, b)
            problems.append(Problem(path, f"{xa} and {xb} may not both be given"))


def lay_xml(lay: Layout, name: str) -> str:
    return next(s.xml for s in lay.specs if s.name == name)


def _label(s: Spec) -> str:
    return s.hint or s.xml


def _check_text(s: Spec, value: str, where: str, problems: list[Problem]) -> None:
    if s.enum is not None and value not in s.enum:
        problems.append(
            Problem(where, f"{value!r} is not an allowed value; use one of {s.enum_text}")
        )
        return
    if s.nonblank and not value.strip():
        problems.append(Problem(where, f"{_label(s)} must not be blank"))
    if s.max_len is not None and len(value) > s.max_len:
        problems.append(
            Problem(where, f"{_label(s)} is {len(value)} characters; at most {s.max_len} allowed")
        )
    if s.pattern is not None and not s.pattern.fullmatch(value):
        problems.append(Problem(where, f"{value!r} does not have the expected form ({s.hint})"))


def walk(node: Node, visit: Callable[[Node, str], None], path: str) -> None:
    """Call `visit(node, path)` for `node` and every node below it."""
    visit(node, path)
    lay = _LAYOUTS.get(type(node)) or layout(type(node))
    for s in lay.children:
        if not s.is_node:
            continue
        v = getattr(node, s.name)
        if v is None or v == ():
            continue
        if s.many:
            for i, item in enumerate(v):
                walk(item, visit, f"{path}/{s.xml}[{i}]")
        else:
            walk(v, visit, f"{path}/{s.xml}")

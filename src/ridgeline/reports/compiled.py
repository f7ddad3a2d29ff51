"""Per-type writer and checker functions generated from the layouts (schema.py).

The generic engine walks every field of every node with its metadata; at about 80
elements per report that is too slow for the 10,000 reports/s/core target. Here each
node type gets two straight-line functions generated once from its layout: the writer
appends its XML in schema order with type-specific formatting, and the checker tests
only the fields that carry a rule and builds path strings only when it reports a
problem. `tests/test_reports_model.py` checks that both agree with the generic engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ridgeline.reports import schema
from ridgeline.reports.schema import Layout, Node, Problem, Spec

Writer = Callable[[Any, str, list[str]], None]
Checker = Callable[[Any, str, list[Problem]], None]

#: Extra per-type rules (emails, phones, IPs), registered by documents.py.
EXTRAS: dict[type, Checker] = {}

_WRITERS: dict[type, Writer] = {}
_CHECKERS: dict[type, Checker] = {}


def _fmt(s: Spec, var: str, *, attr: bool) -> str:
    """A Python expression formatting `var` (a value of the field's type) as XML text."""
    esc = "_esc_attr" if attr else "_esc_text"
    if s.typ is str:
        return f"{esc}({var})"
    if s.typ is bool:
        return f'("true" if {var} else "false")'
    if s.typ in (int, float):
        return f"str({var})"
    return f"{esc}({var}.isoformat())"


def _name(cls: type) -> str:
    return cls.__name__


def _reachable(root: type) -> list[type]:
    seen: list[type] = []
    stack = [root]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.append(cls)
        stack.extend(s.typ for s in schema.layout(cls).specs if s.is_node)
    return seen


def _writer_source(lay: Layout) -> str:
    cls = _name(lay.cls)
    lines = [f"def w_{cls}(node, tag, out):", "    head = '<' + tag"]
    for s in lay.attrs:
        lines += [
            f"    v = node.{s.name}",
            "    if v is not None:",
            f"        head += ' {s.xml}=\"' + {_fmt(s, 'v', attr=True)} + '\"'",
        ]
    lines += ["    start = len(out)", "    out.append('')"]
    if lay.text is not None:
        t = lay.text
        lines += [
            f"    v = node.{t.name}",
            "    if v is not None:",
            f"        out.append({_fmt(t, 'v', attr=False)})",
        ]
    for s in lay.children:
        open_, close = f"<{s.xml}>", f"</{s.xml}>"
        if s.kind == "flag":
            lines += [f"    if node.{s.name}:", f"        out.append('<{s.xml}>true</{s.xml}>')"]
            continue
        if s.is_node:
            call = f"w_{_name(s.typ)}(v, '{s.xml}', out)"
        else:
            call = f"out.append('{open_}' + {_fmt(s, 'v', attr=False)} + '{close}')"
        if s.many:
            lines += [f"    for v in node.{s.name}:", f"        {call}"]
        else:
            lines += [f"    v = node.{s.name}", "    if v is not None:", f"        {call}"]
    lines += [
        "    if len(out) == start + 1:",
        "        out[start] = head + '/>'",
        "    else:",
        "        out[start] = head + '>'",
        "        out.append('</' + tag + '>')",
    ]
    return "\n".join(lines)


def _text_rules(s: Spec, var: str, where: str, consts: dict[str, Any], indent: str) -> list[str]:
    """Checks of a text value `var`; `where` is an expression for its path."""
    label = schema._label(s)
    out: list[str] = []
    if s.enum is not None:
        consts[f"E_{id(s)}"] = s.enum
        consts[f"ET_{id(s)}"] = s.enum_text
        out += [
            f"{indent}if {var} not in E_{id(s)}:",
            f"{indent}    problems.append(Problem({where}, f'{{{var}!r}} is not an allowed value; "
            f"use one of {{ET_{id(s)}}}'))",
        ]
        return out
    if s.nonblank:
        out += [
            f"{indent}if not {var}.strip():",
            f"{indent}    problems.append(Problem({where}, {label + ' must not be blank'!r}))",
        ]
    if s.max_len is not None:
        out += [
            f"{indent}if len({var}) > {s.max_len}:",
            f"{indent}    problems.append(Problem({where}, {label!r} + ' is ' + str(len({var})) + "
            f"' characters; at most {s.max_len} allowed'))",
        ]
    if s.pattern is not None:
        consts[f"P_{id(s)}"] = s.pattern
        out += [
            f"{indent}if not P_{id(s)}.fullmatch({var}):",
            f"{indent}    problems.append(Problem({where}, repr({var}) + "
            f"{' does not have the expected form (' + str(s.hint) + ')'!r}))",
        ]
    return out


def _checker_source(lay: Layout, consts: dict[str, Any]) -> str:
    cls: Any = lay.cls
    lines = [f"def c_{_name(cls)}(node, path, problems):"]
    present: list[str] = []
    for s in lay.specs:
        if s.kind == "attr":
            where = f"path + '/@{s.xml}'"
        elif s.kind == "text":
            where = "path"
        else:
            where = f"path + '/{s.xml}'"
        empty = "not v" if s.many or s.kind == "flag" else "v is None"
        present.append(f"node.{s.name}")
        rules: list[str] = []
        if s.is_node:
            checker = f"c_{_name(s.typ)}"
            if s.many:
                rules += [
                    "        for i, item in enumerate(v):",
                    f"            {checker}(item, {where} + '[' + str(i) + ']', problems)",
                ]
            else:
                rules.append(f"        {checker}(v, {where}, problems)")
        elif s.typ is str and s.kind != "flag":
            if s.many:
                inner = _text_rules(s, "item", f"{where} + '[' + str(i) + ']'", consts, " " * 12)
                if inner:
                    rules += ["        for i, item in enumerate(v):", *inner]
            else:
                rules += _text_rules(s, "v", where, consts, " " * 8)
        if not s.required and not rules:
            continue
        lines += [f"    v = node.{s.name}", f"    if {empty}:"]
        if s.required:
            what = "attribute" if s.kind == "attr" else "value" if s.kind == "text" else "element"
            message = f"{schema._label(s)} is required ({what} missing)"
            lines.append(f"        problems.append(Problem({where}, {message!r}))")
        else:
            lines.append("        pass")
        if rules:
            lines += ["    else:", *rules]
    if cls.CHOICE:
        names = ", ".join(s.xml for s in lay.children)
        lines += [
            "    n = " + " + ".join(f"({p} is not None)" for p in present),
            "    if n != 1:",
            f"        problems.append(Problem(path, 'exactly one of {names} is needed here, "
            "found ' + str(n)))",
        ]
    for a, b in cls.EXCLUSIVE:
        xa, xb = schema.lay_xml(lay, a), schema.lay_xml(lay, b)
        lines += [
            f"    if node.{a} not in (None, (), False) and node.{b} not in (None, (), False):",
            f"        problems.append(Problem(path, '{xa} and {xb} may not both be given'))",
        ]
    if cls in EXTRAS:
        consts[f"X_{_name(cls)}"] = EXTRAS[cls]
        lines.append(f"    X_{_name(cls)}(node, path, problems)")
    if len(lines) == 1:
        lines.append("    return")
    return "\n".join(lines)


def _compile(root: type) -> None:
    namespace: dict[str, Any] = {
        "Problem": Problem,
        "_esc_text": schema._esc_text,
        "_esc_attr": schema._esc_attr,
    }
    sources = []
    classes = _reachable(root)
    for cls in classes:
        lay = schema.layout(cls)
        sources.append(_writer_source(lay))
        sources.append(_checker_source(lay, namespace))
    exec(
        compile("\n\n".join(sources), f"<ridgeline.reports.compiled {root.__name__}>", "exec"),
        namespace,
    )  # our own generated code, from the layouts
    for cls in classes:
        _WRITERS.setdefault(cls, namespace[f"w_{_name(cls)}"])
        _CHECKERS.setdefault(cls, namespace[f"c_{_name(cls)}"])


def writer(cls: type) -> Writer:
    found = _WRITERS.get(cls)
    if found is None:
        _compile(cls)
        found = _WRITERS[cls]
    return found


def checker(cls: type) -> Checker:
    found = _CHECKERS.get(cls)
    if found is None:
        _compile(cls)
        found = _CHECKERS[cls]
    return found


def write(node: Node, tag: str, out: list[str]) -> None:
    """Append `node`'s XML (the generated writer of its type)."""
    writer(type(node))(node, tag, out)


def check(node: Node, path: str, problems: list[Problem]) -> None:
    """The generic rules plus registered extra rules (the generated checker)."""
    checker(type(node))(node, path, problems)

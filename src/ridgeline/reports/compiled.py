"""Per-type writer and checker functions generated from the layouts (schema.py).

The generic engine walks every field of every node with its metadata; at about 80
elements per report that is too slow for the 10,000 reports/s/core target. Here code
is generated once per document type from its layouts:
- a document writer (`w_Report`, `w_FileDetails`) that appends the XML in schema
  order with every node below it written in place (no call per node), escaping a
  text only when it holds `&`, `<` or `>`, and per-type writers for other roots;
- per type, a fast checker `f_X(node) -> bool` that only answers "no problem" (it
  builds no paths and stops at the first broken rule) and the full checker `c_X`
  that lists every problem with its path; `check` runs the full one only when the
  fast one finds something, so valid documents pay for the fast one alone. Types
  that carry no rule anywhere below them are not descended into.
`tests/test_reports_model.py` and `tests/test_reports_bytes.py` check that both agree
with the generic engine and with digests of the output before this rework.
"""

from __future__ import annotations

import datetime as dt
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
_FAST: dict[type, Callable[[Any], bool]] = {}


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


#: Text of these types never holds a character that XML escapes (isoformat, digits).
_PLAIN = (dt.datetime, dt.date, int, float, bool)
#: How deep the whole-document writer inlines nodes before it calls a type's writer.
_INLINE_DEPTH = 12


def _text_expr(s: Spec, var: str) -> str:
    """`var` as element text, the escape applied only when it has something to escape."""
    if s.typ is str:
        return (
            f'({var} if not ("&" in {var} or "<" in {var} or ">" in {var}) else _esc_text({var}))'
        )
    if s.typ in _PLAIN and s.typ not in (int, float, bool):
        return f"{var}.isoformat()"
    return _fmt(s, var, attr=False)


def _attr_expr(s: Spec, var: str) -> str:
    if s.typ in (dt.datetime, dt.date):
        return f"{var}.isoformat()"
    return _fmt(s, var, attr=True)


def _inline(lay: Layout, var: str, tag: str | None, depth: int, out: list[str]) -> None:
    """Statements appending the XML of node `var` (element `tag`, or the variable `tag`
    when None) with every child node written in place, down to `_INLINE_DEPTH`."""
    ind = "    " * (depth + 1)
    d = depth
    if tag is None:
        head, close = "'<' + tag", "'</' + tag + '>'"
    else:
        head, close = repr("<" + tag), repr(f"</{tag}>")
    if lay.attrs:
        out.append(f"{ind}h{d} = {head}")
        for s in lay.attrs:
            out += [
                f"{ind}a{d} = {var}.{s.name}",
                f"{ind}if a{d} is not None:",
                f"{ind}    h{d} += ' {s.xml}=\"' + {_attr_expr(s, f'a{d}')} + '\"'",
            ]
        head = f"h{d}"
    out += [f"{ind}s{d} = len(out)", f"{ind}add('')"]
    if lay.text is not None:
        t = lay.text
        out += [
            f"{ind}t{d} = {var}.{t.name}",
            f"{ind}if t{d} is not None:",
            f"{ind}    add({_text_expr(t, f't{d}')})",
        ]
    for s in lay.children:
        if s.kind == "flag":
            out += [f"{ind}if {var}.{s.name}:", f"{ind}    add('<{s.xml}>true</{s.xml}>')"]
            continue
        v = f"v{d}"
        if s.many:
            out.append(f"{ind}for {v} in {var}.{s.name}:")
        else:
            out += [f"{ind}{v} = {var}.{s.name}", f"{ind}if {v} is not None:"]
        if not s.is_node:
            out.append(f"{ind}    add(f'<{s.xml}>{{{_text_expr(s, v)}}}</{s.xml}>')")
        elif depth + 1 >= _INLINE_DEPTH:
            out.append(f"{ind}    w_{_name(s.typ)}({v}, '{s.xml}', out)")
        else:
            _inline(schema.layout(s.typ), v, s.xml, depth + 1, out)
    if head.startswith("'") and tag is not None:
        empty, opened = repr(f"<{tag}/>"), repr(f"<{tag}>")
    else:
        empty, opened = f"{head} + '/>'", f"{head} + '>'"
    out += [
        f"{ind}if len(out) == s{d} + 1:",
        f"{ind}    out[s{d}] = {empty}",
        f"{ind}else:",
        f"{ind}    out[s{d}] = {opened}",
        f"{ind}    add({close})",
    ]


def _document_writer_source(lay: Layout) -> str:
    """`w_X(node, tag, out)` for a whole document: its node types written in place."""
    lines = [f"def w_{_name(lay.cls)}(node, tag, out):", "    add = out.append"]
    _inline(lay, "node", None, 0, lines)
    return "\n".join(lines)


def _fail(fast: bool, indent: str, where: str, message: str) -> str:
    """The statement for a broken rule: the fast checker stops, the full one records it."""
    if fast:
        return f"{indent}return False"
    return f"{indent}problems.append(Problem({where}, {message}))"


def _text_rules(
    s: Spec, var: str, where: str, consts: dict[str, Any], indent: str, fast: bool
) -> list[str]:
    """Checks of a text value `var`; `where` is an expression for its path."""
    label = schema._label(s)
    inner = indent + "    "
    out: list[str] = []
    if s.enum is not None:
        consts[f"E_{id(s)}"] = s.enum
        consts[f"ET_{id(s)}"] = s.enum_text
        message = f"f'{{{var}!r}} is not an allowed value; use one of {{ET_{id(s)}}}'"
        return [f"{indent}if {var} not in E_{id(s)}:", _fail(fast, inner, where, message)]
    if s.nonblank:
        out += [
            f"{indent}if not {var}.strip():",
            _fail(fast, inner, where, repr(label + " must not be blank")),
        ]
    if s.max_len is not None:
        message = (
            f"{label!r} + ' is ' + str(len({var})) + ' characters; at most {s.max_len} allowed'"
        )
        out += [f"{indent}if len({var}) > {s.max_len}:", _fail(fast, inner, where, message)]
    if s.pattern is not None:
        consts[f"P_{id(s)}"] = s.pattern
        message = f"repr({var}) + {' does not have the expected form (' + str(s.hint) + ')'!r}"
        out += [f"{indent}if not P_{id(s)}.fullmatch({var}):", _fail(fast, inner, where, message)]
    return out


def _has_rules(cls: type, seen: dict[type, bool]) -> bool:
    """Whether a node of this type (or any node below it) can have a problem at all;
    types that cannot are not descended into."""
    if cls in seen:
        return seen[cls]
    seen[cls] = True  # a cycle (none in the schema) is assumed to have rules
    lay = schema.layout(cls)
    found = bool(cls.CHOICE or cls.EXCLUSIVE or cls in EXTRAS)  # type: ignore[attr-defined]
    for s in lay.specs:
        texts = s.typ is str and s.kind != "flag"
        rules = (s.enum, s.max_len, s.pattern) != (None, None, None) or s.nonblank
        below = s.is_node and _has_rules(s.typ, seen)
        found = found or s.required or (texts and rules) or below
    seen[cls] = found
    return found


def _checker_source(
    lay: Layout, consts: dict[str, Any], fast: bool, ruled: dict[type, bool]
) -> str:
    """The full checker `c_X(node, path, problems)` appends every problem with its path;
    the fast one `f_X(node)` only answers whether there is none, building no paths
    (valid documents, the usual case, take only the fast one)."""
    cls: Any = lay.cls
    name = _name(cls)
    head = f"def f_{name}(node):" if fast else f"def c_{name}(node, path, problems):"
    lines = [head]
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
            if _has_rules(s.typ, ruled):
                sub = _name(s.typ)
                if s.many:
                    rules.append("        for i, item in enumerate(v):")
                    if fast:
                        rules += [
                            f"            if not f_{sub}(item):",
                            "                return False",
                        ]
                    else:
                        rules.append(
                            f"            c_{sub}(item, {where} + '[' + str(i) + ']', problems)"
                        )
                elif fast:
                    rules += [f"        if not f_{sub}(v):", "            return False"]
                else:
                    rules.append(f"        c_{sub}(v, {where}, problems)")
        elif s.typ is str and s.kind != "flag":
            if s.many:
                inner = _text_rules(
                    s, "item", f"{where} + '[' + str(i) + ']'", consts, " " * 12, fast
                )
                if inner:
                    rules += ["        for i, item in enumerate(v):", *inner]
            else:
                rules += _text_rules(s, "v", where, consts, " " * 8, fast)
        if not s.required and not rules:
            continue
        lines += [f"    v = node.{s.name}", f"    if {empty}:"]
        if s.required:
            what = "attribute" if s.kind == "attr" else "value" if s.kind == "text" else "element"
            message = f"{schema._label(s)} is required ({what} missing)"
            lines.append(_fail(fast, "        ", where, repr(message)))
        else:
            lines.append("        pass")
        if rules:
            lines += ["    else:", *rules]
    if cls.CHOICE:
        names = ", ".join(s.xml for s in lay.children)
        message = f"'exactly one of {names} is needed here, found ' + str(n)"
        lines += [
            "    n = " + " + ".join(f"({p} is not None)" for p in present),
            "    if n != 1:",
            _fail(fast, "        ", "path", message),
        ]
    for a, b in cls.EXCLUSIVE:
        xa, xb = schema.lay_xml(lay, a), schema.lay_xml(lay, b)
        lines += [
            f"    if node.{a} not in (None, (), False) and node.{b} not in (None, (), False):",
            _fail(fast, "        ", "path", repr(f"{xa} and {xb} may not both be given")),
        ]
    if cls in EXTRAS:
        consts[f"X_{name}"] = EXTRAS[cls]
        if fast:
            lines += [
                "    found = []",
                f"    X_{name}(node, '', found)",
                "    if found:",
                "        return False",
            ]
        else:
            lines.append(f"    X_{name}(node, path, problems)")
    lines.append("    return True" if fast else "    return")
    return "\n".join(lines)


def _compile(root: type) -> None:
    namespace: dict[str, Any] = {
        "Problem": Problem,
        "_esc_text": schema._esc_text,
        "_esc_attr": schema._esc_attr,
    }
    sources = []
    ruled: dict[type, bool] = {}
    classes = _reachable(root)
    for cls in classes:
        lay = schema.layout(cls)
        sources.append(_writer_source(lay))
        sources.append(_checker_source(lay, namespace, False, ruled))
        sources.append(_checker_source(lay, namespace, True, ruled))
    exec(
        compile("\n\n".join(sources), f"<ridgeline.reports.compiled {root.__name__}>", "exec"),
        namespace,
    )  # our own generated code, from the layouts
    # the root's writer has every node below it written in place (no call per node)
    exec(
        compile(_document_writer_source(schema.layout(root)), f"<ridgeline.reports.compiled "
                f"document {root.__name__}>", "exec"),
        namespace,
    )  # fmt: skip
    for cls in classes:
        _WRITERS.setdefault(cls, namespace[f"w_{_name(cls)}"])
        _CHECKERS.setdefault(cls, namespace[f"c_{_name(cls)}"])
        _FAST.setdefault(cls, namespace[f"f_{_name(cls)}"])


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


def fast_checker(cls: type) -> Callable[[Any], bool]:
    found = _FAST.get(cls)
    if found is None:
        _compile(cls)
        found = _FAST[cls]
    return found


def check(node: Node, path: str, problems: list[Problem]) -> None:
    """The generic rules plus registered extra rules (the generated checker): a fast
    pass that only answers "no problem", then, if there is one, the full pass."""
    cls = type(node)
    fast = _FAST.get(cls) or fast_checker(cls)
    if not fast(node):
        _CHECKERS[cls](node, path, problems)

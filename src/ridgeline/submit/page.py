"""The public page and its files, rendered from the package (no CDN, no third party).

The page is one Jinja2 template filled with one language's strings; its scripts and
the WebAssembly hasher are static files in `static/`. `CONTENT_SECURITY_POLICY` is
what the service sends with the page: scripts only from this server, requests only
to this server, no frames, no forms to elsewhere; `'wasm-unsafe-eval'` is what
browsers require to compile the PDQ WebAssembly.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from jinja2 import Environment, PackageLoader, select_autoescape

from ridgeline.submit.strings import LANGUAGES, strings_for

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("ridgeline.submit", "templates"),
        autoescape=select_autoescape(["html"]),
        keep_trailing_newline=True,
    )


def static_dir() -> str:
    """The folder of the page's scripts, styles and the PDQ WebAssembly."""
    return str(files("ridgeline.submit") / "static")


def choose_language(query: str | None, accept_language: str | None) -> str:
    """`?lang=` first, else the first supported language the browser asks for, else English."""
    if query and query.lower()[:2] in LANGUAGES:
        return query.lower()[:2]
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return strings_for(None)[0]


def render_page(lang: str) -> str:
    """The page in `lang` (English when not supported)."""
    code, strings = strings_for(lang)
    return (
        _environment().get_template("page.html").render(lang=code, t=strings, languages=LANGUAGES)
    )

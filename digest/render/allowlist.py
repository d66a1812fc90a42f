"""The allow-list of the HTML we send, checked on the final document with an HTML5 parser.

Escaping and sanitising happen earlier (Jinja2 autoescape, nh3, `digest.urls`); this check is
the guard behind them. It reads the HTML that leaves us (the email, the web copy, the preview
file) with html5lib, which parses as browsers do, and lists every tag, attribute, URL scheme,
comment or style rule that our MJML templates and the summary allow-list cannot produce. An
issue whose HTML fails it is refused before it is frozen, so it is never sent.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import html5lib

from digest.errors import DigestError
from digest.render.errors import RenderError
from digest.render.sanitise import SUMMARY_ATTRIBUTES, SUMMARY_TAGS
from digest.urls import LINK_SCHEMES

if TYPE_CHECKING:
    from digest.placeholders import Slots

XHTML = "http://www.w3.org/1999/xhtml"
_COMMON = frozenset({"style", "class", "dir", "lang"})
_CELL = frozenset({"align", "valign", "width", "height", "bgcolor", "colspan", "rowspan"})

# What MJML (MRML) writes around our templates, plus what the summary allow-list keeps.
TAGS: dict[str, frozenset[str]] = {
    "html": frozenset({"lang", "dir", "xmlns", "xmlns:v", "xmlns:o"}),
    "head": frozenset(),
    "title": frozenset(),
    "meta": frozenset({"http-equiv", "content", "name", "charset"}),
    "style": frozenset({"type", "media"}),
    "body": _COMMON,
    "div": _COMMON | {"align", "role", "aria-label", "aria-roledescription"},
    "span": _COMMON,
    "table": _COMMON
    | {"align", "border", "cellpadding", "cellspacing", "role", "width", "bgcolor"},
    "tbody": _COMMON,
    "tr": _COMMON,
    "td": _COMMON | _CELL,
    "h1": _COMMON,
    "p": _COMMON,
    **{tag: _COMMON for tag in SUMMARY_TAGS},
    "a": _COMMON | SUMMARY_ATTRIBUTES["a"] | {"href", "rel", "target"},
    "img": _COMMON | SUMMARY_ATTRIBUTES["img"] | {"border"},
}
# Only inside MRML's Outlook conditional comments (`<!--[if mso]>...<![endif]-->`).
OUTLOOK_TAGS = frozenset({"noscript", "xml", "o:officedocumentsettings", "o:allowpng"})
OUTLOOK_TAGS |= {"o:pixelsperinch"}
URL_ATTRIBUTES = frozenset({("a", "href"), ("img", "src")})
META_HTTP_EQUIV = frozenset({"content-type", "x-ua-compatible"})
META_NAMES = frozenset({"viewport", "color-scheme", "supported-color-schemes"})

_CONDITIONAL = re.compile(r"\[if [^\]<>]{1,40}\]>(.*)<!\[endif\]", re.DOTALL)
_BARE_CONDITIONALS = frozenset({"[if !mso]><!", "<![endif]"})
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
_URL_ENDS = "".join(chr(c) for c in range(0x21))
# A character that `digest.urls` always encodes: its presence means a URL skipped it.
_UNENCODED = re.compile(r"[\x00-\x20\x7f\"'<>\\`]")
# CSS that loads, runs or overlays something; a backslash could spell any of it in escapes.
_CSS = re.compile(
    r"expression\s*\(|url\s*\(|image-set\s*\(|@import|javascript:|behaviou?r\s*:|-moz-binding"
    r"|position\s*:\s*(?:fixed|absolute|sticky)|\\|</",
    re.IGNORECASE,
)


class UnsafeHtmlError(RenderError, DigestError):
    """Rendered HTML holds something outside the allow-list; it must not be sent."""


def _url_problem(value: str, slots: Slots | None, relative_ok: bool) -> str | None:
    if slots is not None and slots.pattern.fullmatch(value):
        return None
    if value.startswith("#") or (relative_ok and re.match(r"/(?![/\\])", value)):
        return "unencoded character" if _UNENCODED.search(value) else None
    stripped = re.sub(r"[\t\n\r]", "", value.strip(_URL_ENDS))
    scheme = _SCHEME.match(stripped)
    if scheme is None:
        return "relative URL"
    if scheme.group(1).lower() not in LINK_SCHEMES:
        return f"URL scheme {scheme.group(1).lower()}:"
    if _UNENCODED.search(value):
        return "unencoded character in URL"
    return None


class _Checker:
    def __init__(self, slots: Slots | None, relative_ok: bool) -> None:
        self.slots = slots
        self.relative_ok = relative_ok
        self.found: dict[str, None] = {}  # ordered, unique

    def report(self, problem: str) -> None:
        self.found.setdefault(problem, None)

    def walk(self, tree: Any, *, in_comment: bool = False) -> None:
        open_tags: list[str] = []
        for token in html5lib.getTreeWalker("etree")(tree):
            kind = token["type"]
            if kind in ("StartTag", "EmptyTag"):
                name = self.element(token, in_comment)
                if kind == "StartTag":
                    open_tags.append(name)
            elif kind == "EndTag":
                if open_tags:
                    open_tags.pop()
            elif kind == "Characters" and open_tags and open_tags[-1] == "style":
                self.css(token["data"], "<style>")
            elif kind == "Comment":
                self.comment(token["data"])
            elif kind == "Doctype" and token["name"] != "html":
                self.report(f"doctype {token['name']!r}")

    def element(self, token: dict[str, Any], in_comment: bool) -> str:
        name = str(token["name"]).lower()
        if token["namespace"] not in (XHTML, None):
            self.report(f"foreign element <{name}> ({token['namespace']})")
            return name
        allowed = TAGS.get(name)
        if allowed is None:
            if not (in_comment and name in OUTLOOK_TAGS):
                self.report(f"tag <{name}>")
            allowed = frozenset()
        for (namespace, attr), value in token["data"].items():
            attr = attr if namespace is None else f"{namespace}:{attr}"
            self.attribute(name, attr.lower(), value, allowed)
        return name

    def attribute(self, tag: str, attr: str, value: str, allowed: frozenset[str]) -> None:
        where = f"<{tag} {attr}>"
        if attr not in allowed:
            self.report(f"attribute {where}")
        elif (tag, attr) in URL_ATTRIBUTES:
            problem = _url_problem(value, self.slots, self.relative_ok)
            if problem:
                self.report(f"{problem} in {where}: {value[:80]!r}")
        elif attr == "style":
            self.css(value, where)
        elif tag == "meta" and attr == "http-equiv" and value.lower() not in META_HTTP_EQUIV:
            self.report(f"<meta http-equiv={value[:40]!r}>")
        elif tag == "meta" and attr == "name" and value.lower() not in META_NAMES:
            self.report(f"<meta name={value[:40]!r}>")

    def css(self, text: str, where: str) -> None:
        match = _CSS.search(text)
        if match:
            self.report(f"style {match.group(0)!r} in {where}")

    def comment(self, text: str) -> None:
        for problem in _comment_problems(text):
            self.report(problem)


@lru_cache(maxsize=256)
def _comment_problems(text: str) -> tuple[str, ...]:
    """What a comment brings (MRML writes the same few dozen times: parsed once each)."""
    if text in _BARE_CONDITIONALS:
        return ()
    conditional = _CONDITIONAL.fullmatch(text)
    if conditional is None:
        return (f"comment {text[:40]!r}",)
    # Outlook renders what a conditional comment holds: it is HTML to check as well.
    checker = _Checker(None, relative_ok=False)
    checker.walk(html5lib.parseFragment(conditional.group(1)), in_comment=True)
    return tuple(checker.found)


def violations(html: str, *, slots: Slots | None = None, relative_ok: bool = False) -> list[str]:
    """What in `html` is outside the allow-list (empty when all of it is allowed).

    `slots`: the render's per-recipient slots, allowed as link targets. `relative_ok`: same-site
    links such as "/links" are fine (the web copy is served by us).
    """
    checker = _Checker(slots, relative_ok)
    checker.walk(html5lib.parse(html))
    return list(checker.found)


def check_html(
    html: str, what: str, *, slots: Slots | None = None, relative_ok: bool = False
) -> None:
    """Raise UnsafeHtmlError naming what failed, if anything in `html` is not allowed."""
    found = violations(html, slots=slots, relative_ok=relative_ok)
    if found:
        shown = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
        raise UnsafeHtmlError(f"{what} fails the HTML allow-list and will not be sent: {shown}")

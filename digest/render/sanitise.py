"""The HTML a summary may bring into an email, and the one function that enforces it.

Collection cleans a summary with it before storing, and render cleans it again on output, so a
summary stored by older code (or edited in the database) still reaches the email only through
this allow-list. nh3 (ammonia, on html5ever) parses like a browser and serialises every
attribute double-quoted with `"` escaped; every href and src is rebuilt by `digest.urls`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import nh3

from digest.urls import safe_link, safe_url

SUMMARY_TAGS = frozenset(
    {
        "a", "b", "blockquote", "br", "code", "em", "figcaption", "figure", "h2", "h3", "h4",
        "i", "img", "li", "ol", "p", "pre", "strong", "sub", "sup", "u", "ul",
    }
)  # fmt: skip
SUMMARY_ATTRIBUTES = {
    "a": frozenset({"href", "title"}),  # and rel="noopener noreferrer", which nh3 adds
    "img": frozenset({"src", "alt", "width", "height"}),
}
LINK_REL = "noopener noreferrer"
# What an XML document (MJML, lxml) cannot hold: C0 controls but tab, newline and carriage
# return, lone surrogates, U+FFFE and U+FFFF. One such character would fail a whole issue.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# (tag, URL as written) -> the URL to keep, or None to drop the attribute.
UrlResolver = Callable[[str, str], str | None]
_MAX_PASSES = 4


def xml_text(value: str) -> str:
    """`value` without the characters an XML document cannot contain."""
    return _NOT_XML.sub("", value)


def resolve_as_is(tag: str, url: str) -> str | None:
    """Links may be http(s) or mailto, images http(s) only; relative URLs go."""
    return safe_link(url) if tag == "a" else safe_url(url)


def clean_summary(fragment: str, resolve: UrlResolver = resolve_as_is) -> str:
    """`fragment` with only the allowed tags and attributes, every URL made safe by `resolve`."""

    def attribute(tag: str, name: str, value: str) -> str | None:
        if name in ("href", "src"):
            return resolve(tag, value)
        if name in ("width", "height"):
            return value if value.isascii() and value.isdigit() and len(value) <= 4 else None
        return value

    def once(html: str) -> str:
        return nh3.clean(
            html,
            tags=set(SUMMARY_TAGS),
            # "*": nothing on every tag (nh3 would otherwise keep `lang` and `title` anywhere).
            attributes={"*": set(), **{t: set(names) for t, names in SUMMARY_ATTRIBUTES.items()}},
            url_schemes={"http", "https", "mailto"},
            link_rel=LINK_REL,
            strip_comments=True,
            attribute_filter=attribute,
        )

    # html5ever re-parses what it wrote: nested <a> inside a removed <object> comes out
    # restructured once more on a second pass. Clean to a fixed point (two passes for almost
    # every summary), so that cleaning again on output changes nothing.
    cleaned = once(xml_text(fragment))
    for _ in range(_MAX_PASSES):
        again = once(cleaned)
        if again == cleaned:
            break
        cleaned = again
    return cleaned

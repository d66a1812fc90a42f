"""An item's summary made safe to keep: (sanitised HTML, plain text), at collection.

The allow-list itself is `digest.render.sanitise` (nh3), applied again on output; here links
are resolved against the page, URLs made safe (`digest.urls`), tracking pixels dropped and
oversized summaries cut to plain text.
"""

from __future__ import annotations

import html
import re
from typing import Any

import lxml.html
from lxml import etree

from digest.render.sanitise import clean_summary, xml_text
from digest.sources.text import element_text, html_to_text, one_line, shorten
from digest.urls import absolute_url, safe_url

SUMMARY_INPUT_MAX = 200_000  # bytes of HTML read at all: hostile items can be megabytes
SUMMARY_HTML_MAX = 16_000
SUMMARY_TEXT_MAX = 1_000

_PIXEL_SRC = re.compile(
    r"feedburner\.com/~r/|/~ff/|feedsportal|doubleclick|pixel|beacon|/track(ing)?[/?.]"
    r"|stats\.wordpress\.com|/open\.(gif|png)|1x1|spacer\.gif",
    re.IGNORECASE,
)


def _is_pixel(img: Any) -> bool:
    for dimension in ("width", "height"):
        value = (img.get(dimension) or "").strip().rstrip("px")
        if value.isdigit() and int(value) <= 2:
            return True
    return bool(_PIXEL_SRC.search(img.get("src") or ""))


def sanitise_summary(raw: str | None, base: str | None) -> tuple[str, str]:
    """(safe HTML, plain text) of an item's summary.

    The summary allow-list (digest.render.sanitise, nh3) keeps a few tags and attributes, so
    scripts, event handlers, styles, comments, SVG and MathML go; links are resolved against
    the page and every href/src is made a percent-encoded http(s) URL (mailto for links) or
    dropped. Tracking pixels are dropped, and the result is serialised by nh3 again, every
    attribute double-quoted. Oversized summaries are cut to plain text.
    """
    if not raw or not raw.strip():
        return "", ""
    raw = xml_text(raw[:SUMMARY_INPUT_MAX])  # lxml refuses what XML cannot hold

    def resolve(tag: str, url: str) -> str | None:
        if tag == "a" and (mailto := safe_url(url, schemes=frozenset({"mailto"}))):
            return mailto
        return safe_url(absolute_url(url, base))

    cleaned = clean_summary(raw, resolve)
    if not cleaned.strip():
        return "", ""
    try:
        root = lxml.html.fragment_fromstring(cleaned, create_parent="div")
    except (etree.ParserError, ValueError):
        text = shorten(one_line(html_to_text(cleaned)), SUMMARY_TEXT_MAX)
        return (f"<p>{html.escape(text)}</p>" if text else ""), text
    for img in list(root.iter("img")):
        if not img.get("src") or _is_pixel(img):
            img.drop_tree()
    # lxml quotes attributes its own way (single quotes around a value holding '"'): the
    # stored form is nh3's, with every attribute double-quoted.
    body = clean_summary(
        html.escape(root.text or "", quote=False)
        + "".join(lxml.html.tostring(child, encoding="unicode") for child in root)
    ).strip()
    text_full = one_line(element_text(root))
    text = shorten(text_full, SUMMARY_TEXT_MAX)
    if len(body) > SUMMARY_HTML_MAX:
        body = f"<p>{html.escape(text)}</p>"
    if not text and "<img" not in body:
        return "", ""
    return body, text

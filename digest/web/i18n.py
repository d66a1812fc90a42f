"""The language of a public page: the one its visitor chose with the page's language links
(?lang=xx), else the reader's own when the link names a subscriber, else the browser's
(Accept-Language, by q-value), else the list's; always one we ship a web catalogue for
(digest/render/locale/<lang>/LC_MESSAGES/web.po), English in the end.

An Accept-Language header is a visitor's bytes: whatever it holds, the page is answered in
some shipped language and never with an error.
"""

from __future__ import annotations

import gettext
import re
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode

from babel import Locale, UnknownLocaleError, negotiate_locale
from starlette.requests import Request
from starlette.responses import Response

from digest.delivery.audience import primary_language
from digest.render.language import WEB_DOMAIN, shipped_languages, translations

# A browser sends a few dozen bytes; a longer header is cut, not refused.
MAX_HEADER = 2000
MAX_ENTRIES = 40
_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*\Z")
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")  # RFC 9110 12.4.2
_R = TypeVar("_R", bound=Response)


@dataclass(frozen=True, slots=True)
class PageLanguage:
    code: str  # a shipped language ("fr")
    chosen: bool = False  # from ?lang=: links between our pages carry it on
    negotiated: bool = False  # Accept-Language was read: the answer varies with it

    @property
    def direction(self) -> str:
        return "rtl" if Locale.parse(self.code).character_order == "right-to-left" else "ltr"

    @property
    def translations(self) -> gettext.NullTranslations:
        return translations(self.code, WEB_DOMAIN)


def N_(message: str) -> str:
    """Marks a message for the web catalogue; the page translates it when it shows it."""
    return message


def page_languages() -> tuple[str, ...]:
    return shipped_languages(WEB_DOMAIN)


def shipped(tag: str | None) -> str | None:
    """The shipped language of a tag ("fr-CA" -> "fr"), or None."""
    code = primary_language(tag[:40] if tag else None)
    return code if code in page_languages() else None


def accepted_languages(header: str | None) -> list[str]:
    """Accept-Language (RFC 9110 12.5.4) as language tags, most wanted first: by q-value,
    the header's order among equals. "*", q=0 and malformed entries are left out."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for index, entry in enumerate(header[:MAX_HEADER].split(",")[:MAX_ENTRIES]):
        tag, *params = (part.strip() for part in entry.split(";"))
        if not _TAG.match(tag):
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() != "q":
                continue
            value = value.strip()
            q = float(value) if _QVALUE.match(value) else 0.0  # a bad weight: not wanted
        if q > 0:
            ranked.append((-q, index, tag.lower()))
    return [tag for _, _, tag in sorted(ranked)]


def browser_language(header: str | None) -> str | None:
    """The shipped language the browser wants most ("fr-CH" matches "fr"), or None."""
    found = negotiate_locale(accepted_languages(header), page_languages(), sep="-", aliases={})
    return shipped(found)


def page_language(
    request: Request, *, reader: str | None = None, fallback: str | None = None
) -> PageLanguage:
    """`reader`: the subscriber's language when the link names one; `fallback`: the list's."""
    if chosen := shipped(request.query_params.get("lang")):
        return PageLanguage(chosen, chosen=True)
    if own := shipped(reader):
        return PageLanguage(own)
    browser = browser_language(request.headers.get("accept-language"))
    return PageLanguage(browser or shipped(fallback) or "en", negotiated=True)


def language_headers(response: _R, language: PageLanguage) -> _R:
    """Content-Language, and Vary when the browser's header chose it: the same URL answers
    in another language for another browser, and caches must know."""
    response.headers["content-language"] = language.code
    if language.negotiated:
        response.headers["vary"] = "Accept-Language"
    return response


def language_name(code: str) -> str:
    """ "fr" -> "Français": a language named in itself, so its readers find it."""
    try:
        name = Locale.parse(code).get_display_name(code) or code
    except (UnknownLocaleError, ValueError):
        return code
    return name[:1].upper() + name[1:]


def switcher(language: PageLanguage) -> list[tuple[str, str, str, bool]]:
    """The page in each shipped language: (code, name, link relative to the page, is this
    one). The link is the page's first view (an archive's newest issues) in that language."""
    return [
        (code, language_name(code), f"?{urlencode({'lang': code})}", code == language.code)
        for code in page_languages()
    ]


def carry(url: str, language: PageLanguage) -> str:
    """A link to another of our pages, keeping a language the visitor chose."""
    if not language.chosen:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'lang': language.code})}"

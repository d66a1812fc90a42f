"""The plain-text part, built from the same view as the HTML (never by scraping the HTML).

Lines wrap at 72 columns; URLs and slots are never broken, so a long URL may run past.
Content is plain text here, so it is made plain on output: no control character or line
separator from a title or summary can start a line of its own (a fake "Unsubscribe:" line) or
reach a terminal; links are the same validated, percent-encoded URLs as in the HTML.
"""

from __future__ import annotations

import re
import textwrap

from babel import Locale
from babel.dates import format_date

from digest.placeholders import Slots
from digest.render.environment import paragraphs_filter
from digest.render.language import labels_for
from digest.render.view import IssueView, ItemView
from digest.urls import safe_url

WIDTH = 72
RULE = "-" * WIDTH
# C0/C1 controls, DEL, line/paragraph separators, bidi overrides that reorder a line, and what
# UTF-8 cannot encode (lone surrogates) or no text should hold (U+FFFE, U+FFFF).
_NOT_PLAIN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]+"
)


def _plain(text: str) -> str:
    return _NOT_PLAIN.sub(" ", text)


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    """Lines of at most WIDTH under `indent`; `first` replaces the indent on the first line."""
    return textwrap.wrap(
        _plain(text),
        width=WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _underlined(title: str, char: str) -> list[str]:
    lines = _wrap(title)
    return [*lines, char * min(max(len(line) for line in lines), WIDTH)] if lines else []


def _item(number: int, item: ItemView, locale: Locale) -> list[str]:
    marker = f"{number}. "
    indent = " " * len(marker)
    title = _wrap(item.title, indent, first=marker) or [marker.rstrip()]
    meta = [format_date(item.published_at, "long", locale=locale)] if item.published_at else []
    if item.source_name:
        meta.append(item.source_name)
    lines = [*title]
    if meta:
        lines.extend(_wrap(" · ".join(meta), indent))
    if link := safe_url(item.url):
        lines.append(f"{indent}{link}")
    for paragraph in paragraphs_filter(item.summary_text):
        lines.append("")
        lines.extend(_wrap(paragraph, indent))
    return lines


def render_text(view: IssueView, locale: Locale, slots: Slots) -> str:
    """The whole text part, with the render's per-recipient slots left in."""
    labels = labels_for(locale)
    lines = [*_underlined(view.list_name, "="), labels.issue.format(number=view.number)]
    lines += ["", f"{labels.view_online}: {slots.VIEW_ONLINE_URL}", ""]
    lines.append(labels.greeting.format(name=slots.GREETING_NAME))
    for paragraph in paragraphs_filter(view.intro):
        lines.append("")
        lines.extend(_wrap(paragraph))

    number = 0
    for group in view.groups:
        if not group.items:
            continue
        lines += ["", ""]
        if group.label:
            lines += [*_underlined(group.label.upper(), "-"), ""]
        for index, item in enumerate(group.items):
            number += 1
            if index:
                lines.append("")
            lines.extend(_item(number, item, locale))

    lines += ["", "", RULE]
    lines.extend(_wrap(labels.why.format(email=slots.EMAIL, list=_plain(view.list_name))))
    lines += [
        "",
        f"{labels.view_online}: {slots.VIEW_ONLINE_URL}",
        f"{labels.preferences}: {slots.PREFERENCES_URL}",
        f"{labels.unsubscribe}: {slots.UNSUBSCRIBE_URL}",
    ]
    if view.footer_address.strip():
        lines.append("")
        lines.extend(_plain(line).strip() for line in view.footer_address.strip().splitlines())
    return "\n".join(line.rstrip() for line in lines) + "\n"

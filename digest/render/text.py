"""The plain-text part, built from the same view as the HTML (never by scraping the HTML).

Lines wrap at 72 columns; URLs and placeholders are never broken, so a long URL may run past.
"""

from __future__ import annotations

import textwrap

from babel import Locale
from babel.dates import format_date

from digest import placeholders
from digest.render.environment import paragraphs_filter, web_url_test
from digest.render.language import labels_for
from digest.render.view import IssueView, ItemView

WIDTH = 72
RULE = "-" * WIDTH


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    """Lines of at most WIDTH under `indent`; `first` replaces the indent on the first line."""
    return textwrap.wrap(
        text,
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
    if web_url_test(item.url):
        lines.append(f"{indent}{item.url}")
    for paragraph in paragraphs_filter(item.summary_text):
        lines.append("")
        lines.extend(_wrap(paragraph, indent))
    return lines


def render_text(view: IssueView, locale: Locale) -> str:
    """The whole text part, with the per-recipient placeholders left in."""
    labels = labels_for(locale)
    lines = [*_underlined(view.list_name, "="), labels.issue.format(number=view.number)]
    lines += ["", f"{labels.view_online}: {placeholders.VIEW_ONLINE_URL}", ""]
    lines.append(labels.greeting.format(name=placeholders.GREETING_NAME))
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
    lines.extend(_wrap(labels.why.format(email=placeholders.EMAIL, list=view.list_name)))
    lines += [
        "",
        f"{labels.view_online}: {placeholders.VIEW_ONLINE_URL}",
        f"{labels.preferences}: {placeholders.PREFERENCES_URL}",
        f"{labels.unsubscribe}: {placeholders.UNSUBSCRIBE_URL}",
    ]
    if view.footer_address.strip():
        lines.append("")
        lines.extend(line.strip() for line in view.footer_address.strip().splitlines())
    return "\n".join(line.rstrip() for line in lines) + "\n"

"""Render an issue once: Jinja2 -> MJML -> HTML, plus the text part, slots left in.

Each render draws its own secret slot marker (digest.placeholders) after the content is fixed,
and the HTML it returns has passed the allow-list (digest.render.allowlist): an issue that
fails it raises UnsafeHtmlError and is never frozen or sent.
"""

from __future__ import annotations

import re
from pathlib import Path

from babel import Locale
from jinja2 import TemplateError

from digest import placeholders
from digest.placeholders import Slots
from digest.render.allowlist import check_html
from digest.render.checks import review
from digest.render.environment import get_environment
from digest.render.errors import RenderError
from digest.render.language import html_lang, labels_for, resolve_locale, text_direction
from digest.render.mjml import compile_mjml
from digest.render.text import render_text
from digest.render.view import IssueView, RenderedIssue

TEMPLATE = "digest.mjml"
DEFAULT_ACCENT = "#1f5fbf"
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
# Gmail clips a message whose HTML passes about 102 KB; warn a little before that.
DEFAULT_SIZE_WARNING_BYTES = 100 * 1024


def render_mjml_source(view: IssueView, *, templates_dir: Path | None = None) -> str:
    """The MJML document of an issue (the step before compiling; useful for debugging)."""
    locale, _ = resolve_locale(view.language)
    return _render_mjml(view, locale, templates_dir, Slots.new())


def _render_mjml(view: IssueView, locale: Locale, templates_dir: Path | None, slots: Slots) -> str:
    accent = view.extra.get("accent_color", DEFAULT_ACCENT)
    context = {
        "view": view,
        "locale": locale,
        "t": labels_for(locale),
        "lang": html_lang(locale),
        "dir": text_direction(locale),
        "accent": accent if _HEX_COLOR.fullmatch(accent) else DEFAULT_ACCENT,
        "ph": slots,
    }
    try:
        return get_environment(templates_dir).get_template(TEMPLATE).render(context)
    except TemplateError as exc:
        raise RenderError(f"email template {TEMPLATE}: {exc}") from exc


def render_issue(
    view: IssueView,
    *,
    size_warning_bytes: int = DEFAULT_SIZE_WARNING_BYTES,
    templates_dir: Path | None = None,
) -> RenderedIssue:
    """Render the issue once for every recipient; delivery fills in the slots."""
    locale, warnings = resolve_locale(view.language)
    slots = Slots.new()
    html = compile_mjml(_render_mjml(view, locale, templates_dir, slots))
    text = render_text(view, locale, slots)

    for part, body in (("HTML", html), ("text", text)):
        missing = [f for f in placeholders.REQUIRED if slots.slot(f) not in body]
        if missing:
            raise RenderError(f"the {part} part lost placeholders {missing}: check the templates")
    check_html(html, f"issue {view.number} of {view.list_name!r}", slots=slots)

    warnings.extend(review(view, html))
    size = len(html.encode("utf-8"))
    if size > size_warning_bytes:
        warnings.append(
            f"the HTML is {size / 1024:.1f} KB, over the {size_warning_bytes / 1024:.0f} KB "
            "warning size: Gmail clips messages near 102 KB; drop items or shorten summaries"
        )
    return RenderedIssue(html=html, text=text, warnings=tuple(warnings), slots=slots)

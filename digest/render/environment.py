"""The Jinja2 environment for email templates (templates/email/).

Autoescape is on for .mjml as well as .html/.xml: `select_autoescape`'s defaults miss .mjml, and
an MJML template is HTML underneath, so a title like "<script>" must arrive escaped. Undefined
names fail loudly (StrictUndefined) instead of rendering as empty text. Date filters format in
the list's language, read from the `locale` variable every email template receives.

Every value a template prints loses the characters XML cannot hold (C0 controls but tab and
newline, lone surrogates, U+FFFE/U+FFFF): MRML parses the document as XML and would refuse the
whole issue over one form feed in a title. Content reaches markup only through the filters
here: `web_url` (a link or image URL, validated and percent-encoded, or None) and `summary`
(the summary's HTML through the allow-list again).
Templates write every attribute double-quoted: MRML keeps a double-quoted value as written but
re-quotes a single-quoted one holding `"` as `\"`, which would end the attribute.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup

from digest.render.errors import RenderError
from digest.render.intro import intro_html
from digest.render.language import month_heading
from digest.render.sanitise import clean_summary, xml_text
from digest.urls import safe_url

AUTOESCAPED_EXTENSIONS = ("mjml", "html", "htm", "xml")


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return Markup(xml_text(value))
    return xml_text(value) if isinstance(value, str) else value


def email_templates_dir() -> Path:
    """templates/email/ at the repository root, next to the `digest` package.

    `resolve()` follows the links of a strict editable install back to the checkout.
    """
    candidate = Path(__file__).resolve().parents[2] / "templates" / "email"
    if not candidate.is_dir():
        raise RenderError(f"email templates not found at {candidate}")
    return candidate


def _locale(context: Context) -> Locale:
    locale = context.get("locale")
    if not isinstance(locale, Locale):
        raise RenderError("email templates need a babel `locale` in their context")
    return locale


@pass_context
def date_filter(context: Context, value: date | datetime | None, fmt: str = "long") -> str:
    """A date in the list's language: "21 February 2024" (en_GB), "21 février 2024" (fr)."""
    if value is None:
        return ""
    return format_date(value, fmt, locale=_locale(context))


@pass_context
def month_filter(context: Context, value: date | datetime | None) -> str:
    """Month and year as a heading: "February 2024", "Février 2024"."""
    if value is None:
        return ""
    return month_heading(value, _locale(context))


def paragraphs_filter(value: str) -> list[str]:
    """Plain text split on blank lines, each paragraph's line breaks folded to spaces."""
    blocks = (" ".join(block.split()) for block in value.replace("\r\n", "\n").split("\n\n"))
    return [block for block in blocks if block]


def web_url_filter(value: Any) -> str | None:
    """An http(s) URL made safe for an attribute, or None: anything else (javascript:, data:,
    a quote that would end the attribute) never becomes a link or an image."""
    return safe_url(value) if isinstance(value, str) else None


def summary_filter(value: str) -> Markup:
    """A stored summary through the allow-list once more, on its way into the email."""
    return Markup(clean_summary(value))


def intro_filter(value: str) -> Markup:
    """The intro's Markdown as HTML, through the summaries' allow-list."""
    return Markup(intro_html(value))


def build_environment(templates_dir: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=select_autoescape(
            enabled_extensions=AUTOESCAPED_EXTENSIONS,
            disabled_extensions=("txt",),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        finalize=_finalize,
    )
    env.filters["date"] = date_filter
    env.filters["month"] = month_filter
    env.filters["paragraphs"] = paragraphs_filter
    env.filters["web_url"] = web_url_filter
    env.filters["summary"] = summary_filter
    env.filters["intro"] = intro_filter
    return env


@lru_cache(maxsize=4)
def get_environment(templates_dir: Path | None = None) -> Environment:
    """One environment per templates folder per process (it caches compiled templates)."""
    return build_environment(templates_dir or email_templates_dir())

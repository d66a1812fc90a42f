"""Jinja2 for the web pages in templates/web/: autoescaped, strict about undefined names.

The public pages' words go through gettext (Jinja's i18n extension, `{% trans %}` and `_()`):
each render passes its page's catalogue in the context, so one shared environment serves
every language at once; a page given none (the editor's) says English.
"""

from __future__ import annotations

import gettext
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digest.web.i18n import PageLanguage, language_headers

# templates/ sits beside digest/ at the top of the project.
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "web"
STATIC_DIR = TEMPLATES_DIR / "static"
ENGLISH = PageLanguage("en")
_NONE = gettext.NullTranslations()


def _catalogue(context: Context) -> gettext.NullTranslations:
    found = context.get("i18n")
    return found if isinstance(found, gettext.NullTranslations) else _NONE


@pass_context
def _gettext(context: Context, message: str) -> str:
    return _catalogue(context).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return _catalogue(context).ngettext(singular, plural, n)


@pass_context
def _day(context: Context, value: date | datetime) -> str:
    """A date as the page's language writes it ("2 mars 2026", "٢ مارس ٢٠٢٦")."""
    return format_date(value, "long", locale=str(context.get("lang", "en")))


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template here is HTML
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # Whitespace inside {% trans %} is collapsed, so a message's id is one line of words.
    env.policies["ext.i18n.trimmed"] = True
    # newstyle: variables are escaped before they go into a translated (trusted) string.
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["day"] = _day
    return env


def root_path(request: Request) -> str:
    """The prefix the app is mounted under (behind a proxy), for links between our pages."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    *,
    language: PageLanguage = ENGLISH,
) -> HTMLResponse:
    settings = request.app.state.settings
    # The page's context wins: a list's own sender name replaces the service's.
    values = {
        "root": root_path(request),
        "brand": settings.from_name,
        "lang": language.code,
        "dir": language.direction,
        "i18n": language.translations,
        "switcher": [],
        **context,
    }
    page = environment().get_template(template).render(values)
    return language_headers(HTMLResponse(page, status_code=status_code), language)

"""An edition's language: its babel locale and the words the email itself says.

The few fixed words of an email (footer links, greeting) come from gettext catalogues
(digest/render/locale/, en, fr, es, de and ar shipped), so the text and HTML parts say the
same thing; a language without a catalogue falls back to English. The public web pages' words
are a second domain ("web") in the same folder.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

DEFAULT_LANGUAGE = "en"


CATALOGUES = Path(__file__).with_name("locale")
DOMAIN = "email"
WEB_DOMAIN = "web"


@dataclass(frozen=True, slots=True)
class Labels:
    greeting: str  # {name} is GREETING_NAME: a space and the name, or nothing
    issue: str  # {number}
    view_online: str
    preferences: str
    unsubscribe: str
    read_more: str
    why: str  # {email} {list}
    translations: gettext.NullTranslations

    def items(self, locale: Locale, count: int) -> str:
        """ "12 stories in this issue", in the catalogue's plural form for `count`."""
        del locale  # the catalogue's Plural-Forms decide
        text = self.translations.ngettext(
            "{count} story in this issue", "{count} stories in this issue", count
        )
        return text.format(count=count)


@lru_cache(maxsize=32)
def translations(language: str, domain: str = DOMAIN) -> gettext.NullTranslations:
    """The gettext catalogue of a language (digest/render/locale/<lang>/LC_MESSAGES/<domain>.po,
    read with Babel: no compiled file to keep in step); English words when there is none."""
    if language not in shipped_languages(domain):  # never a path made of a visitor's bytes
        return gettext.NullTranslations()
    path = CATALOGUES / language / "LC_MESSAGES" / f"{domain}.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=language, domain=domain)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=domain)


@lru_cache(maxsize=4)
def shipped_languages(domain: str = DOMAIN) -> tuple[str, ...]:
    """The languages with a catalogue of the domain's words (the email's by default)."""
    return tuple(
        sorted(p.parent.parent.name for p in CATALOGUES.glob(f"*/LC_MESSAGES/{domain}.po"))
    )


@lru_cache(maxsize=32)
def _labels(language: str) -> Labels:
    t = translations(language)
    _ = t.gettext
    return Labels(
        greeting=_("Hello{name},"),
        issue=_("Issue {number}"),
        view_online=_("View online"),
        preferences=_("Preferences"),
        unsubscribe=_("Unsubscribe"),
        read_more=_("Read more"),
        why=_("You receive this email at {email} because you subscribed to {list}."),
        translations=t,
    )


def resolve_locale(language: str) -> tuple[Locale, list[str]]:
    """The babel locale for a list's language ("en", "fr", "en-GB", "pt_BR").

    An unknown or empty language must not stop an issue: it falls back to English with a warning.
    """
    try:
        return Locale.parse(language.strip().replace("-", "_")), []
    except (UnknownLocaleError, ValueError, TypeError):
        warning = f"unknown language {language!r}: rendered in {DEFAULT_LANGUAGE!r}"
        return Locale.parse(DEFAULT_LANGUAGE), [warning]


def labels_for(locale: Locale) -> Labels:
    """The email's words in the locale's language (English where the catalogue has none)."""
    return _labels(locale.language)


def html_lang(locale: Locale) -> str:
    """BCP 47 tag for the lang attribute: "en-GB", "fr"."""
    return "-".join(part for part in (locale.language, locale.script, locale.territory) if part)


def text_direction(locale: Locale) -> str:
    return "rtl" if locale.character_order == "right-to-left" else "ltr"


def month_heading(value: date | datetime, locale: Locale) -> str:
    """Month and year as a group heading: "February 2024", "Février 2024"."""
    text = format_date(value, "LLLL y", locale=locale)
    return text[:1].upper() + text[1:]

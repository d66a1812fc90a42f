"""The list's language: its babel locale and the words the email itself says.

The few fixed strings of an email (footer links, greeting) live here per language so the text
and HTML parts say the same thing; a language without its own strings falls back to English.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from babel import Locale, UnknownLocaleError
from babel.dates import format_date

DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class Labels:
    greeting: str  # {name} is GREETING_NAME: a space and the name, or nothing
    issue: str  # {number}
    items_one: str  # {count}
    items_other: str  # {count}
    view_online: str
    preferences: str
    unsubscribe: str
    read_more: str
    why: str  # {email} {list}

    def items(self, locale: Locale, count: int) -> str:
        template = self.items_one if locale.plural_form(count) == "one" else self.items_other
        return template.format(count=count)


LABELS: dict[str, Labels] = {
    "en": Labels(
        greeting="Hello{name},",
        issue="Issue {number}",
        items_one="{count} story in this issue",
        items_other="{count} stories in this issue",
        view_online="View online",
        preferences="Preferences",
        unsubscribe="Unsubscribe",
        read_more="Read more",
        why="You receive this email at {email} because you subscribed to {list}.",
    ),
    "fr": Labels(
        greeting="Bonjour{name},",
        issue="Numéro {number}",
        items_one="{count} article dans ce numéro",
        items_other="{count} articles dans ce numéro",
        view_online="Voir en ligne",
        preferences="Préférences",
        unsubscribe="Se désabonner",
        read_more="Lire la suite",
        why="Vous recevez ce message à l’adresse {email} car vous êtes abonné·e à {list}.",
    ),
    "es": Labels(
        greeting="Hola,{name}:",
        issue="Número {number}",
        items_one="{count} noticia en este número",
        items_other="{count} noticias en este número",
        view_online="Ver en línea",
        preferences="Preferencias",
        unsubscribe="Darse de baja",
        read_more="Leer más",
        why="Recibe este correo en {email} porque se suscribió a {list}.",
    ),
    "de": Labels(
        greeting="Hallo{name},",
        issue="Ausgabe {number}",
        items_one="{count} Beitrag in dieser Ausgabe",
        items_other="{count} Beiträge in dieser Ausgabe",
        view_online="Online ansehen",
        preferences="Einstellungen",
        unsubscribe="Abbestellen",
        read_more="Weiterlesen",
        why="Sie erhalten diese E-Mail an {email}, weil Sie {list} abonniert haben.",
    ),
}


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
    return LABELS.get(locale.language, LABELS[DEFAULT_LANGUAGE])


def html_lang(locale: Locale) -> str:
    """BCP 47 tag for the lang attribute: "en-GB", "fr"."""
    return "-".join(part for part in (locale.language, locale.script, locale.territory) if part)


def text_direction(locale: Locale) -> str:
    return "rtl" if locale.character_order == "right-to-left" else "ltr"


def month_heading(value: date | datetime, locale: Locale) -> str:
    """Month and year as a group heading: "February 2024", "Février 2024"."""
    text = format_date(value, "LLLL y", locale=locale)
    return text[:1].upper() + text[1:]

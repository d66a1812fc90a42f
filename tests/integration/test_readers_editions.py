"""Language editions (issue 11), from the CLI: four listing pages of our own making in the
seed's format (/work/shared/seed/: month headings, numbered items with a date line and a
summary), in English, French, Spanish and Arabic. Each source's language is read from its
page; every reader gets the edition of their language, with dates, month headings and the
email's words in it, right to left for Arabic; a reader of a language the list has no
edition of gets the list's own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from html import escape
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Issue, Source
from tests.fixtures.sources.server import SourceServer, serving
from tests.flows import maildir_copies

# (path, lang, title of the page, [(month heading, [(title, date line, date, summary)])])
PAGES = {
    "en": (
        "/en/news",
        "News on Social and Solidarity Economy",
        [
            (
                "February 2024",
                [
                    (
                        "Four modules on the SSE now in Portuguese",
                        "12 February 2024",
                        "2024-02-12",
                        "Awareness-raising modules.",
                    )
                ],
            ),
            (
                "January 2024",
                [
                    (
                        "ILO joins a regional SSE network in Asia",
                        "31 January 2024",
                        "2024-01-31",
                        "A regional conference.",
                    )
                ],
            ),
        ],
    ),
    "fr": (
        "/fr/actualites",
        "Actualités de l’économie sociale et solidaire",
        [
            (
                "Février 2024",
                [
                    (
                        "Quatre modules sur l’ESS désormais disponibles",
                        "12 février 2024",
                        "2024-02-12",
                        "Des modules de sensibilisation.",
                    )
                ],
            ),
            (
                "Janvier 2024",
                [
                    (
                        "L’OIT rejoint un réseau régional de l’ESS",
                        "31 janvier 2024",
                        "2024-01-31",
                        "Une conférence régionale.",
                    )
                ],
            ),
        ],
    ),
    "es": (
        "/es/noticias",
        "Noticias sobre la economía social y solidaria",
        [
            (
                "Febrero de 2024",
                [
                    (
                        "Cuatro módulos sobre la ESS ya disponibles",
                        "12 de febrero de 2024",
                        "2024-02-12",
                        "Módulos de sensibilización.",
                    )
                ],
            ),
            (
                "Enero de 2024",
                [
                    (
                        "La OIT se une a una red regional de la ESS",
                        "31 de enero de 2024",
                        "2024-01-31",
                        "Una conferencia regional.",
                    )
                ],
            ),
        ],
    ),
    "ar": (
        "/ar/news",
        "أخبار الاقتصاد الاجتماعي والتضامني",
        [
            (
                "فبراير 2024",
                [
                    (
                        "أربع وحدات عن الاقتصاد الاجتماعي متاحة الآن",
                        "12 فبراير 2024",
                        "2024-02-12",
                        "وحدات للتوعية.",
                    )
                ],
            ),
            (
                "يناير 2024",
                [
                    (
                        "منظمة العمل الدولية تنضم إلى شبكة إقليمية",
                        "31 يناير 2024",
                        "2024-01-31",
                        "مؤتمر إقليمي.",
                    )
                ],
            ),
        ],
    ),
}
SELECTORS = [
    "--item",
    "ol.news > li",
    "--title",
    "h3 a",
    "--link",
    "h3 a",
    "--date",
    "time",
    "--summary",
    "p.summary",
]


def listing_page(lang: str) -> str:
    """A news-listing page laid out as the seed shows one: the page title, then per month a
    heading and a numbered list of items, each a linked title, its date and a summary."""
    path, title, months = PAGES[lang]
    direction = ' dir="rtl"' if lang == "ar" else ""
    parts = [f'<!doctype html><html lang="{lang}"{direction}><head><meta charset="utf-8">']
    parts.append(f"<title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>")
    n = 0
    for heading, items in months:
        parts.append(f'<h2>{escape(heading)}</h2><ol class="news">')
        for item_title, date_line, iso, summary in items:
            n += 1
            parts.append(
                f'<li><h3><a href="{path}/{n}">{escape(item_title)}</a></h3>'
                f'<time datetime="{iso}">{escape(date_line)}</time>'
                f'<p class="summary">{escape(summary)}</p></li>'
            )
        parts.append("</ol>")
    parts.append("</body></html>")
    return "".join(parts)


@pytest.fixture
def site() -> Iterator[SourceServer]:
    with serving() as running:
        for lang, (path, _, _) in PAGES.items():
            running.add(path, listing_page(lang))
        yield running


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from digest.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, f"digest {' '.join(args)}: {out}{err}"
    return out + err


READERS = {
    "ana@example.org": "en",
    "benoit@example.org": "fr",
    "carmen@example.org": "es",
    "dalia@example.org": "ar",
    "dieter@example.org": "de",  # no German edition: the list's own, English
}


def _text(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body((subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


@time_machine.travel(datetime(2026, 12, 15, 12, 0, tzinfo=UTC), tick=True)  # a December issue
def test_every_reader_gets_the_edition_of_their_language(
    session: Session, db_url: str, site: SourceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "lists", "create", "sse", "--name", "SSE News", "--lookback-days", "2000")
    for path, _, _ in PAGES.values():
        cli(capsys, "sources", "add", site.url(path), "--kind", "html", *SELECTORS, "--list", "sse")
    languages = {url: lang for url, lang in session.execute(select(Source.url, Source.language))}
    assert {site.url(p): lang for lang, (p, _, _) in PAGES.items()} == languages
    out = cli(capsys, "lists", "readers", "sse", "--editions", "fr,es,ar")
    assert "editions en, ar, es, fr" in out
    for email, lang in READERS.items():
        cli(capsys, "subscribers", "add", email, "--list", "sse")
        cli(capsys, "subscribers", "prefs", email, "--list", "sse", "--language", lang)
    cli(capsys, "collect")
    cli(capsys, "issues", "compose", "sse")
    issue_id = session.scalars(select(Issue.id)).one()
    out = cli(capsys, "issues", "approve", str(issue_id))
    out = cli(capsys, "issues", "variants", str(issue_id))
    for lang in ("en", "fr", "es", "ar"):
        assert re.search(
            rf"│\s*{lang}\s*│\s*all\s*│\s*{2 if lang == 'en' else 1}\s*│\s*2\s*│", out
        ), out
    cli(capsys, "issues", "send", str(issue_id))

    copies = {c.envelope_to: c.message for c in maildir_copies(Path("outbox"))}
    assert set(copies) == set(READERS)
    expected = {
        "en": ("Read more", "February 12, 2024", "February 2024", "SSE News: "),
        "fr": ("Lire la suite", "12 février 2024", "Février 2024", "SSE News: Décembre"),
        "es": ("Leer más", "12 de febrero de 2024", "Febrero 2024", "SSE News: Diciembre"),
        "ar": ("اقرأ المزيد", "12 فبراير 2024", "فبراير 2024", "SSE News: ديسمبر"),
    }
    for email, lang in READERS.items():
        edition = lang if lang in PAGES else "en"
        msg = copies[email]
        html, text = _text(msg, "html"), _text(msg, "plain")
        read_more, date, month, subject = expected[edition]
        assert str(msg["Subject"]).startswith(subject.split(":")[0]), msg["Subject"]
        if edition != "en":
            assert str(msg["Subject"]).startswith(subject), msg["Subject"]
        for body in (html, text):
            assert date in body, (email, edition)
        assert month in html and month.upper() in text, (email, edition)
        assert read_more in html
        # Only the items of that edition's source.
        for other, (_, _, months) in PAGES.items():
            for _, items in months:
                for item_title, *_ in items:
                    assert (item_title in text) is (other == edition), (email, item_title)
        assert f'lang="{edition}"' in html
        assert ('dir="rtl"' in html) is (edition == "ar")

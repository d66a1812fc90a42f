"""The public pages in the reader's language (issue 11): sign-up, confirm, preferences,
unsubscribe, the archive, the help page of the web copy and the error pages, in French,
Spanish and Arabic, with no English word of the web catalogue left in them; the subscriber's
language beats the browser's, which beats the list's; a hostile Accept-Language never makes
a 5xx."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import html5lib
import pytest
import time_machine
from babel.dates import format_date
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import (
    Issue,
    IssueStatus,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from digest.placeholders import Slots
from digest.web.app import create_app
from tests.fixtures.sources.server import SourceServer, serving
from tests.flows import maildir_copies
from tests.helpers import outbox_messages, token
from tests.integration.test_readers_editions import PAGES, SELECTORS, cli, listing_page
from tests.web_messages import read_catalogue

LANGUAGES = ("fr", "es", "ar")
SENT_AT = datetime(2026, 3, 2, 9, 0)
# Babel's long dates, as a reader of each language writes them.
DATES = {"fr": "2 mars 2026", "es": "2 de marzo de 2026"}


def _subscription(session: Session, lst: MailingList, email: str, language: str | None) -> int:
    subscriber = Subscriber(email=email, language=language)
    session.add(subscriber)
    session.flush()
    row = Subscription(
        list_id=lst.id, subscriber_id=subscriber.id, status=SubscriptionStatus.CONFIRMED
    )
    session.add(row)
    session.flush()
    return row.id


def _seed(session: Session) -> tuple[MailingList, dict[str, int]]:
    lst = MailingList(slug="sse", name="SSE News", editions=["fr", "es", "ar"], timezone="UTC")
    session.add(lst)
    session.flush()
    session.add(
        Issue(
            list_id=lst.id,
            number=1,
            subject="SSE News: March",
            html="<p>x</p>",
            status=IssueStatus.SENT,
            sent_at=SENT_AT,
            slot_marker=Slots.new().marker,
        )
    )
    readers = {lang: _subscription(session, lst, f"{lang}@example.org", lang) for lang in LANGUAGES}
    session.commit()
    return lst, readers


def _visible(page: str) -> str:
    """What a reader reads or hears of a page: its text (title included) and the labels."""
    tree = html5lib.parse(page, namespaceHTMLElements=False)
    words = [e.text or "" for e in tree.iter() if e.tag not in ("script", "style")]
    words += [e.tail or "" for e in tree.iter()]
    words += [v for e in tree.iter() for k, v in e.attrib.items() if k in ("aria-label", "title")]
    return " ".join(" ".join(words).split())


def untranslated(page: str, language: str) -> list[str]:
    """The English words of the web catalogue the page still says (a message the language
    translates by itself, "Status" in German, is not counted)."""
    text = _visible(page)
    left = []
    for message in read_catalogue(language):
        if not message.id or not isinstance(message.id, str) or message.string == message.id:
            continue
        english = re.sub(r"<[^>]+>", "", message.id)
        for fragment in re.split(r"%\(\w+\)s", english):
            fragment = " ".join(fragment.split()).strip(" .,:;?!()")
            if len(fragment) >= 4 and re.search(rf"(?<!\w){re.escape(fragment)}(?!\w)", text):
                left.append(fragment)
    return left


def _in(language: str, page: str) -> None:
    """The page says it is in `language`, right to left for Arabic, and speaks it."""
    tree = html5lib.parse(page, namespaceHTMLElements=False)
    root = tree if tree.tag == "html" else tree.find("html")
    assert root is not None
    assert root.get("lang") == language, root.attrib
    assert root.get("dir") == ("rtl" if language == "ar" else "ltr")
    assert untranslated(page, language) == []
    said = [m.string for m in read_catalogue(language) if m.id and isinstance(m.string, str)]
    assert any(re.sub(r"<[^>]+>|%\(\w+\)s", "", s).strip(" .") in _visible(page) for s in said)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_public_page_in_the_readers_language(
    session: Session, db_url: str, language: str
) -> None:
    _, readers = _seed(session)
    sid = readers[language]
    client = TestClient(create_app(), follow_redirects=False)
    browser = {"accept-language": f"{language};q=0.9, en;q=0.1"}
    pages: dict[str, str] = {}

    def check(name: str, answer: object, status: int = 200) -> None:
        assert answer.status_code == status, (name, answer.status_code)  # type: ignore[attr-defined]
        pages[name] = answer.text  # type: ignore[attr-defined]
        _in(language, pages[name])

    check("sign-up", client.get("/s/sse", headers=browser))
    check("sign-up sent", client.post("/s/sse", data={"email": "x@example.org"}, headers=browser))
    bad = client.post("/s/sse", data={"email": "not an address"}, headers=browser)
    check("sign-up refused", bad, 422)
    # Token pages: the reader's own language, whatever the browser says.
    english = {"accept-language": "en"}
    check("confirm", client.get(f"/c/{token('confirm', sid)}", headers=english))
    check("confirmed", client.post(f"/c/{token('confirm', sid)}", headers=english))
    prefs = f"/p/{token('preferences', sid)}"
    check("preferences", client.get(prefs, headers=english))
    for notice in ("saved", "unsubscribed", "resubscribed", "unchanged"):
        check(f"preferences {notice}", client.get(f"{prefs}?done={notice}"))
    # The notice itself is said, not only the rest of the page.
    for notice, said in (("saved", "Your preferences have been saved."),
                         ("unchanged", "Nothing needed to change.")):  # fmt: skip
        words = read_catalogue(language).get(said)
        assert words is not None and words.string in _visible(pages[f"preferences {notice}"])
    unsubscribe = f"/u/{token('unsubscribe', sid)}"
    check("unsubscribe", client.get(unsubscribe, headers=english))
    check("unsubscribed", client.post(unsubscribe))
    check("preferences, unsubscribed", client.get(prefs))
    check("confirm, stale", client.post(f"/c/{token('confirm', sid)}"))
    stale = read_catalogue(language).get("This link no longer confirms")
    assert stale is not None and stale.string in pages["confirm, stale"]
    for status in (SubscriptionStatus.PENDING, SubscriptionStatus.BOUNCED):
        session.execute(
            Subscription.__table__.update().where(Subscription.id == sid).values(status=status)
        )
        session.commit()
        check(f"preferences, {status}", client.get(prefs))
    check("web copy's links", client.get(f"/links?lang={language}"))
    check("archive", client.get("/archive/sse", headers=browser))
    check("archive via switcher", client.get(f"/archive/sse?lang={language}"))
    # Errors: the link named nobody, so the browser's language.
    check("bad link", client.get("/u/not-a-token", headers=browser), 400)
    check("gone", client.get(f"/p/{token('preferences', 99999)}", headers=browser), 404)
    check("no such list", client.get("/s/nope", headers=browser), 404)
    check("wrong method", client.put("/s/sse", headers=browser), 405)

    archive = pages["archive"]
    when = DATES.get(language) or format_date(SENT_AT, "long", locale=language)
    assert f'<time datetime="2026-03-02">{when}</time>' in archive
    assert 'hreflang="en"' in archive and f'<li lang="{language}" aria-current="true">' in archive
    # The sign-up page's switcher: its own language current, another one a plain link.
    other = "es" if language == "fr" else "fr"
    name = {"fr": "Français", "es": "Español"}[other]
    assert f'<li lang="{language}" aria-current="true">' in pages["sign-up"]
    assert (
        f'<li><a href="?lang={other}" lang="{other}" hreflang="{other}">{name}</a></li>'
        in pages["sign-up"]
    )
    # The sign-up form offers the page's language as the edition first.
    assert f'<option value="{language}" lang="{language}" selected>' in pages["sign-up"]
    # The switcher's choice is kept in the links to the list's other pages.
    assert f'href="/s/sse?lang={language}"' in pages["archive via switcher"]


def test_the_reader_beats_the_browser_and_the_browser_beats_the_list(
    session: Session, db_url: str
) -> None:
    lst = MailingList(slug="de", name="Nachrichten", language="de", timezone="UTC")
    session.add(lst)
    session.flush()
    french = _subscription(session, lst, "fr@example.org", "fr")
    nobody = _subscription(session, lst, "none@example.org", None)
    elsewhere = _subscription(session, lst, "pt@example.org", "pt")  # no Portuguese pages
    session.commit()
    client = TestClient(create_app())

    def lang(path: str, accept: str | None = None) -> tuple[str, str]:
        answer = client.get(path, headers={"accept-language": accept} if accept else {})
        assert answer.status_code == 200
        found = re.search(r'<html lang="([a-z]+)"', answer.text)
        assert found is not None
        assert answer.headers["content-language"] == found.group(1)
        return found.group(1), answer.headers.get("vary", "")

    prefs = {sid: f"/p/{token('preferences', sid)}" for sid in (french, nobody, elsewhere)}
    assert lang(prefs[french], "es, ar;q=0.5") == ("fr", "")  # theirs: no Vary
    assert lang(prefs[nobody], "es;q=0.4, ar;q=0.5") == ("ar", "Accept-Language")
    assert lang(prefs[nobody]) == ("de", "Accept-Language")  # the list's
    assert lang(prefs[elsewhere], "es") == ("es", "Accept-Language")
    assert lang(prefs[nobody], "pt-BR, *;q=0.5") == ("de", "Accept-Language")
    assert lang(prefs[french] + "?lang=ar", "es")[0] == "ar"  # chosen on the page
    assert lang("/s/de")[0] == "de" and lang("/s/de", "es-MX,es;q=0.9")[0] == "es"
    assert lang("/archive/de", "fr-CA")[0] == "fr"
    assert lang("/archive/de?lang=xx", "es")[0] == "es"  # a language we do not ship: ignored
    # The check of the pages above can fail: an English page is full of untranslated words.
    assert "Email address" in untranslated(client.get("/s/de?lang=en").text, "fr")


HEADER = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=120,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(accept=HEADER, lang=st.text(max_size=12))
def test_no_accept_language_header_makes_a_server_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, accept: str, lang: str
) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    client = _client(sqlite_url)
    for path in ("/s/sse", "/archive/sse", "/archive/sse/feed.atom", "/u/forged", "/links"):
        header = {"accept-language": accept.encode("latin-1")}  # any byte a client may send
        answer = client.get(path, params={"lang": lang}, headers=header)
        assert answer.status_code < 500, (path, accept, answer.status_code)


_clients: dict[str, TestClient] = {}


def _client(url: str) -> TestClient:
    """One app (and list) per database for the examples of the property test."""
    if url not in _clients:
        from digest.config import reset_settings
        from digest.db import session_factory

        reset_settings()
        with session_factory(url)() as session:
            _seed(session)
        _clients.clear()
        _clients[url] = TestClient(create_app())
    return _clients[url]


@pytest.fixture
def site() -> Iterator[SourceServer]:
    """The listing pages of test_readers_editions, one per language, served locally."""
    with serving() as running:
        for lang, (path, _, _) in PAGES.items():
            running.add(path, listing_page(lang))
        yield running


@time_machine.travel(datetime(2026, 12, 15, 12, 0, tzinfo=UTC), tick=True)  # a December issue
def test_view_online_shows_the_readers_own_variant(
    session: Session, db_url: str, site: SourceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each copy's "view online" link opens its own variant: the reader's edition and topics,
    in their language; a link mailed before variants (the issue's token) still opens the
    issue; the archive shows the edition of the page's language."""
    cli(capsys, "lists", "create", "sse", "--name", "SSE News", "--lookback-days", "2000")
    for lang in ("en", "fr", "es"):
        cli(capsys, "sources", "add", site.url(PAGES[lang][0]), "--kind", "html", *SELECTORS,
            "--list", "sse")  # fmt: skip
    cli(capsys, "lists", "readers", "sse", "--editions", "fr,es")
    cli(capsys, "lists", "topic", "sse", "modules", "--name", "Modules", "--keyword", "modules")
    readers = {"ana@example.org": ("en", ""), "benoit@example.org": ("fr", "modules"),
               "carmen@example.org": ("es", "")}  # fmt: skip
    for email, (lang, topics) in readers.items():
        cli(capsys, "subscribers", "add", email, "--list", "sse")
        cli(capsys, "subscribers", "prefs", email, "--list", "sse", "--language", lang,
            "--topics", topics)  # fmt: skip
    cli(capsys, "collect")
    cli(capsys, "issues", "compose", "sse")
    issue_id = session.scalars(select(Issue.id)).one()
    cli(capsys, "issues", "approve", str(issue_id))
    cli(capsys, "issues", "send", str(issue_id))
    copies = {c.envelope_to: c.message for c in maildir_copies(Path("outbox"))}
    assert set(copies) == set(readers)

    client = TestClient(create_app())
    titles = {lang: [title for _, items in PAGES[lang][2] for title, *_ in items] for lang in PAGES}
    expected = {
        "ana@example.org": ("en", titles["en"], "Read more"),
        "benoit@example.org": ("fr", titles["fr"][:1], "Lire la suite"),  # modules only
        "carmen@example.org": ("es", titles["es"], "Leer más"),
    }
    seen = set()
    for email, (lang, shown, read_more) in expected.items():
        body = copies[email].get_body(("html",))
        assert body is not None
        found = re.search(r'href="https?://[^"/]+(/v/[^"]+)"', str(body.get_content()))
        assert found is not None, email
        path = found.group(1)
        seen.add(path)
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-language"] == lang
        assert f'lang="{lang}"' in page.text and read_more in page.text
        every = [title for titles_ in titles.values() for title in titles_]
        assert [t for t in every if escape(t, quote=False) in page.text] == shown, email
        assert f"/links?lang={lang}" in page.text  # the help page, in their language
        assert email not in page.text  # the web copy is nobody's
    assert len(seen) == 3
    # A link mailed before variants names the issue: it opens the edition of the browser's
    # language, as the archive does.
    for accept, lang in (("es", "es"), ("de", "en")):
        page = client.get(f"/v/{token('view', issue_id)}", headers={"accept-language": accept})
        assert page.status_code == 200 and page.headers["content-language"] == lang
        assert titles[lang][0] in page.text and titles["fr"][0] not in page.text
    assert client.get(f"/v/{token('variant', 99999)}").status_code == 404
    assert client.get(f"/v/{token('unsubscribe', 1)}").status_code == 400
    # The archive: the edition of the page's language, the list's own by default.
    for accept, lang in (("es", "es"), ("de", "en"), ("fr-CH", "fr")):
        page = client.get("/archive/sse/1", headers={"accept-language": accept})
        assert page.headers["content-language"] == lang
        assert [t for t in titles[lang] if escape(t, quote=False) in page.text] == titles[lang]
        others = [t for code, ts in titles.items() if code != lang for t in ts]
        assert not [t for t in others if escape(t, quote=False) in page.text], accept
        feed = client.get("/archive/sse/feed.atom", headers={"accept-language": accept})
        # The feed's own language is the edition it holds, not the browser's (de reads en).
        assert f'xml:lang="{lang}"' in feed.text.split("<entry")[0], accept
    assert "Diciembre" in client.get("/archive/sse?lang=es").text  # the edition's subject


def test_the_confirmation_is_mailed_in_the_readers_language(session: Session, db_url: str) -> None:
    """The edition chosen at sign-up, or the page's language on a list without editions,
    is the reader's: their confirmation mail says its words in it, then their pages do."""
    session.add_all(
        [
            MailingList(slug="sse", name="SSE News", editions=["fr", "es"], timezone="UTC"),
            MailingList(slug="solo", name="Solo", timezone="UTC"),  # English only
        ]
    )
    session.commit()
    client = TestClient(create_app(), follow_redirects=False)
    french = {"accept-language": "fr-FR,fr;q=0.9"}
    client.post("/s/sse", data={"email": "carmen@example.org", "language": "es"}, headers=french)
    solo = client.get("/s/solo", headers=french).text
    assert '<input name="language" type="hidden" value="fr">' in solo
    client.post("/s/solo", data={"email": "benoit@example.org", "language": "fr"}, headers=french)
    client.post("/s/solo", data={"email": "ana@example.org"})  # an English page: no language
    mails = {str(m["To"]): m for m in outbox_messages(Path("outbox"))}
    expected = {
        "carmen@example.org": ("Confirma tu suscripción a SSE News", "Confirma aquí:"),
        "benoit@example.org": ("Confirmez votre abonnement à Solo", "Confirmez ici :"),
        "ana@example.org": ("Confirm your subscription to Solo", "Confirm here:"),
    }
    for email, (subject, words) in expected.items():
        body = mails[email].get_body(("plain",))
        assert body is not None
        assert mails[email]["Subject"] == subject and words in str(body.get_content())
    link = re.search(
        r"/c/(\S+)", str(mails["benoit@example.org"].get_body(("plain",)).get_content())
    )  # type: ignore[union-attr]
    assert link is not None
    assert '<html lang="fr"' in client.get(f"/c/{link.group(1)}").text  # no header: theirs

"""The language of a public page (issue 11): Accept-Language read by q-value, only languages
we ship, and no header, however hostile, makes an error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from digest.web.i18n import accepted_languages, browser_language, page_language, page_languages
from tests.web_messages import read_catalogue, web_messages


def _request(accept: bytes | None = None, query: bytes = b"") -> Request:
    headers = [] if accept is None else [(b"accept-language", accept)]
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    return Request({**scope, "query_string": query})


def test_q_values_order_the_tags_and_equal_ones_keep_the_headers_order() -> None:
    header = "de;q=0.7, fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5, es;q=0.9, it;q=0"
    assert accepted_languages(header) == ["fr-ch", "fr", "es", "en", "de"]
    assert accepted_languages("da, en-gb;q=0.8, en;q=0.7") == ["da", "en-gb", "en"]
    # A malformed weight or tag is left out, not guessed at.
    assert accepted_languages("fr;q=2, es;q=abc, x_y, ar;q=0.001, ;q=1") == ["ar"]
    assert accepted_languages("") == accepted_languages(None) == []


def test_the_browsers_language_is_the_best_one_we_ship() -> None:
    assert browser_language("pt-BR, es;q=0.5, fr;q=0.4") == "es"  # no Portuguese pages
    assert browser_language("fr-CA;q=0.3, ar-EG;q=0.8") == "ar"
    assert browser_language("FR") == "fr"
    assert browser_language("pt, *") is None  # "*": no preference we can act on


def test_the_reader_beats_the_browser_which_beats_the_list_and_lang_beats_all() -> None:
    spanish = _request(b"es")
    assert page_language(spanish, reader="fr", fallback="de").code == "fr"
    assert page_language(spanish, reader=None, fallback="de").code == "es"
    assert page_language(spanish, reader="pt-BR", fallback="de").code == "es"  # not shipped
    assert page_language(_request(), reader=None, fallback="de").code == "de"
    assert page_language(_request(b"pt"), reader=None, fallback="zz").code == "en"
    chosen = page_language(_request(b"es", b"lang=ar"), reader="fr", fallback="de")
    assert (chosen.code, chosen.chosen, chosen.direction) == ("ar", True, "rtl")
    # What the browser said was read only when nothing before it decided.
    assert page_language(spanish, reader="fr").negotiated is False
    assert page_language(spanish).negotiated is True


@settings(max_examples=300)
@given(st.binary(max_size=300), st.binary(max_size=60))
def test_any_header_and_query_give_a_shipped_language(accept: bytes, query: bytes) -> None:
    language = page_language(_request(accept, query), reader=None, fallback="fr")
    assert language.code in page_languages()
    assert language.direction in ("ltr", "rtl")


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["fr", "es", "ar", "de", "en-GB", "pt", "*", "zh-Hant-TW", "x"]),
            st.one_of(st.none(), st.floats(0, 1), st.text(max_size=5)),
        ),
        max_size=8,
    )
)
def test_well_formed_headers_pick_the_most_wanted_shipped_language(
    entries: list[tuple[str, float | str | None]],
) -> None:
    header = ", ".join(
        tag if q is None else f"{tag};q={q:.3f}" if isinstance(q, float) else f"{tag};q={q}"
        for tag, q in entries
    )
    picked = browser_language(header)
    ranked = accepted_languages(header)
    wanted = [t.split("-")[0] for t in ranked if t.split("-")[0] in page_languages()]
    assert picked == (wanted[0] if wanted else None)


def test_every_shipped_catalogue_says_every_word_of_the_pages() -> None:
    """fr, es, de and ar say each message of templates/web/*.html and digest/web (English's
    catalogue is the messages themselves); run `python -m tests.web_messages` after a change."""
    messages = web_messages()
    assert len(messages) > 50
    assert set(page_languages()) == {"en", "fr", "es", "de", "ar"}
    for language in page_languages():
        catalogue = read_catalogue(language)
        ids = {m.id for m in catalogue if m.id}
        assert ids == set(messages), language  # none missing, none left over
        if language == "en":
            continue
        empty = [m.id for m in catalogue if m.id and not m.string]
        assert empty == [], (language, empty)
        for m in catalogue:  # the same placeholders, or the page breaks or says less
            if m.id and isinstance(m.id, str) and isinstance(m.string, str):
                assert sorted(_fields(m.id)) == sorted(_fields(m.string)), (language, m.id)


def _fields(text: str) -> list[str]:
    import re

    return re.findall(r"%\(\w+\)s|<[a-z]+\b[^>]*>|</[a-z]+>", text)


def test_every_email_catalogue_says_the_messages_of_the_english_one() -> None:
    """The email's words (digest/render/locale/*/LC_MESSAGES/email.po), the sign-up
    confirmation's included: each shipped language translates every one of them."""
    from babel.messages.pofile import read_po

    from digest.render.language import CATALOGUES, DOMAIN, shipped_languages

    def ids(language: str) -> dict[object, object]:
        with (CATALOGUES / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
            return {m.id: m.string for m in read_po(po, locale=language) if m.id}

    english = ids("en")
    assert "Confirm your subscription to {list}" in english
    for language in shipped_languages():
        found = ids(language)
        assert set(found) == set(english), language
        if language != "en":
            assert all(found.values()), language

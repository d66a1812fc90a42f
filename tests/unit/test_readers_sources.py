"""Sources tell their language and their items' categories (issue 11): editions and topics
are built from them, so what a document says is validated before it is kept."""

from __future__ import annotations

import json

from digest.sources.feeds import MAX_CATEGORIES, parse_feed
from digest.sources.language import declared_language, detect_language, url_language

RSS = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>T</title><link>https://news.example.org/</link>
<language>fr-FR</language>
<item><title>Un</title><link>https://news.example.org/1</link>
<category>Emploi</category><category>emploi</category><category><![CDATA[<b>Co-op</b>]]></category>
</item></channel></rss>"""


def test_feed_categories_are_kept_as_plain_text_once_each() -> None:
    (item,) = parse_feed(RSS, "https://news.example.org/feed")
    assert item.categories == ("Emploi", "Co-op")


def test_json_feed_tags_are_categories_and_capped() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "T",
        "items": [
            {
                "id": "1",
                "url": "https://news.example.org/1",
                "title": "One",
                "tags": ["Jobs", 7, None, *[f"t{n}" for n in range(40)], "x" * 500],
            }
        ],
    }
    (item,) = parse_feed(json.dumps(doc).encode(), "https://news.example.org/feed.json")
    assert item.categories[0] == "Jobs"
    assert len(item.categories) == MAX_CATEGORIES


def test_a_document_declares_its_language() -> None:
    assert declared_language(RSS) == "fr-fr"
    assert declared_language(b'<!doctype html><html dir="rtl" lang="ar"><head>') == "ar"
    assert declared_language(b'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="es">') == "es"
    # Nothing Babel knows, or nothing like a tag: no language.
    assert declared_language(b'<html lang="zz-top">') is None
    assert declared_language(b'<html lang="fr"><script>') == "fr"
    assert declared_language(b'<html lang="\\"><script>alert(1)</script>">') is None


def test_a_url_names_a_language_when_the_document_does_not() -> None:
    assert url_language("https://www.ilo.org/fr/ressources/actualites") == "fr"
    assert url_language("https://www.ilo.org/resources/news?lang=es") == "es"
    assert url_language("https://ar.example.org/news") == "ar"
    assert url_language("https://www.example.org/news/2024/") is None
    assert detect_language(b'<html lang="en">', "https://www.ilo.org/fr/") == "en"

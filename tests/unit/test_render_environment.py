"""The email Jinja environment: autoescape by extension, strict undefined, babel filters."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from babel import Locale
from jinja2 import UndefinedError

from digest.render.environment import (
    build_environment,
    email_templates_dir,
    get_environment,
    paragraphs_filter,
    web_url_filter,
)


def test_templates_folder_is_found_from_the_package():
    folder = email_templates_dir()
    assert folder.name == "email" and folder.parent.name == "templates"
    assert (folder / "digest.mjml").is_file()
    assert get_environment().loader is not None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("t.mjml", "&lt;b&gt;&amp;"),
        ("t.html", "&lt;b&gt;&amp;"),
        ("t.xml", "&lt;b&gt;&amp;"),
        ("t.txt", "<b>&"),
    ],
)
def test_autoescape_is_on_for_mjml_html_xml_and_off_for_text(tmp_path, name, expected):
    (tmp_path / name).write_text("{{ value }}")
    env = build_environment(tmp_path)
    assert env.get_template(name).render(value="<b>&") == expected


def test_undefined_names_fail_instead_of_rendering_empty(tmp_path):
    (tmp_path / "t.mjml").write_text("{{ view.missing }}")
    with pytest.raises(UndefinedError):
        build_environment(tmp_path).get_template("t.mjml").render(view=object())


@pytest.mark.parametrize(
    ("language", "long", "month"),
    [
        ("en_GB", "21 February 2024", "February 2024"),
        ("fr", "21 février 2024", "Février 2024"),
        ("es", "21 de febrero de 2024", "Febrero 2024"),
        ("de", "21. Februar 2024", "Februar 2024"),
    ],
)
def test_date_filters_speak_the_lists_language(tmp_path, language, long, month):
    (tmp_path / "t.txt").write_text("{{ d | date }}|{{ d | month }}|{{ none | date }}")
    out = (
        build_environment(tmp_path)
        .get_template("t.txt")
        .render(d=datetime(2024, 2, 21, 23, 59), none=None, locale=Locale.parse(language))
    )
    assert out == f"{long}|{month}|"


def test_date_filter_takes_a_babel_format(tmp_path):
    (tmp_path / "t.txt").write_text("{{ d | date('d MMM y') }}")
    out = (
        build_environment(tmp_path)
        .get_template("t.txt")
        .render(d=date(2024, 2, 1), locale=Locale.parse("fr"))
    )
    assert out == "1 févr. 2024"


def test_paragraphs_split_on_blank_lines_and_fold_line_breaks():
    assert paragraphs_filter("One\nline.\r\n\r\n\n  Two.  \n\n") == ["One line.", "Two."]
    assert paragraphs_filter("   ") == []


@pytest.mark.parametrize(
    ("value", "link"),
    [
        ("https://example.org/a?b=1", "https://example.org/a?b=1"),
        ("HTTP://EXAMPLE.ORG", "http://example.org"),
        ('https://e.org/a"onerror=x', "https://e.org/a%22onerror=x"),
        ("javascript:alert(1)", None),
        (" javascript:alert(1)", None),
        ("data:text/html;base64,PHNjcmlwdD4=", None),
        ("//example.org/x", None),
        ("http://", None),
        ("http://[::1", None),
        ("", None),
        (None, None),
    ],
)
def test_only_http_urls_become_links_and_they_come_out_encoded(value, link):
    assert web_url_filter(value) == link

"""The guard behind escaping: the allow-list check of final HTML, the URL rules, the slots."""

from __future__ import annotations

import pytest

from digest.errors import DigestError
from digest.placeholders import LEGACY_MARKER, SlotError, Slots
from digest.render.allowlist import UnsafeHtmlError, check_html, violations
from digest.render.issue import render_issue
from digest.urls import safe_link, safe_url
from tests.fixtures.sample_issue import sample_issue_view


def test_our_own_rendering_is_inside_the_allow_list() -> None:
    rendered = render_issue(sample_issue_view())
    assert violations(rendered.html, slots=rendered.slots) == []
    # Without the render's slots, its own footer links are not URLs at all.
    assert violations(rendered.html) != []


@pytest.mark.parametrize(
    ("html", "reported"),
    [
        ("<p onclick=x>a</p>", "attribute <p onclick>"),
        ("<img src=https://e.org/i.png onerror=alert(1)>", "attribute <img onerror>"),
        ("<script>alert(1)</script>", "tag <script>"),
        ("<iframe src=https://e.org></iframe>", "tag <iframe>"),
        ("<form action=https://e.org><input></form>", "tag <form>"),
        ("<base href=https://e.org/>", "tag <base>"),
        ("<object data=x></object>", "tag <object>"),
        (
            '<meta http-equiv="refresh" content="0;url=https://e.org">',
            "<meta http-equiv='refresh'>",
        ),
        ("<svg onload=alert(1)></svg>", "foreign element <svg>"),
        ("<math><mi>x</mi></math>", "foreign element <math>"),
        ('<a href="javascript:alert(1)">x</a>', "URL scheme javascript:"),
        ('<a href=" jav&#x09;ascript:alert(1)">x</a>', "URL scheme javascript:"),
        ('<a href="vbscript:x">x</a>', "URL scheme vbscript:"),
        ('<img src="data:image/png;base64,AA">', "URL scheme data:"),
        ('<a href="/relative">x</a>', "relative URL"),
        ('<a href="https://e.org/a&quot;b">x</a>', "unencoded character in URL"),
        ('<a href="[[digest:email]]">x</a>', "relative URL"),
        ("<!-- a comment -->", "comment ' a comment '"),
        ("<![CDATA[x]]>", "comment '[CDATA[x]]'"),
        ("<!--[if mso]><script>alert(1)</script><![endif]-->", "tag <script>"),
        ('<p style="background:url(https://e.org/t.gif)">x</p>', "style 'url('"),
        ('<p style="position: fixed">x</p>', "style 'position: fixed'"),
        ("<p style='x:\\75rl(y)'>x</p>", "style '\\\\'"),
        ("<style>@import 'x.css';</style>", "style '@import'"),
    ],
)
def test_what_the_check_reports(html: str, reported: str) -> None:
    found = violations(f"<!doctype html><html><head><title>t</title></head><body>{html}")
    assert any(reported in problem for problem in found), found


def test_a_failing_render_is_refused_with_a_clear_error_naming_what_failed(tmp_path) -> None:
    (tmp_path / "digest.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>"
        '<a href="javascript:alert(1)">x</a><p onmouseover="x">'
        "{{ ph.EMAIL }} {{ ph.UNSUBSCRIBE_URL }} {{ ph.PREFERENCES_URL }} {{ ph.VIEW_ONLINE_URL }}"
        "</p></mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    with pytest.raises(UnsafeHtmlError) as caught:
        render_issue(sample_issue_view(), templates_dir=tmp_path)
    message = str(caught.value)
    assert "will not be sent" in message
    assert "URL scheme javascript:" in message and "attribute <p onmouseover>" in message
    assert isinstance(caught.value, DigestError)  # the CLI says it in one line, the API in a 4xx
    with pytest.raises(UnsafeHtmlError, match="the preview"):
        check_html("<script></script>", "the preview")


def test_slots_are_only_those_of_the_render() -> None:
    slots = Slots.new()
    assert slots != Slots.new()
    assert f"[[{slots.marker}:email]]" == slots.EMAIL
    body = f"a {slots.EMAIL} [[digest:email]] {Slots.new().EMAIL} {slots.NAME}"
    assert slots.fill(body, {"email": "X"}) == (
        f"a X [[digest:email]] {body.split()[3]} {slots.NAME}"
    )
    assert (
        slots.fill(body, {"email": "X"}, default="") == f"a X [[digest:email]] {body.split()[3]} "
    )
    for forged in ("", "digest-", "digest-XYZ", "digest-" + "0" * 31, "x" * 39, "digest:email"):
        with pytest.raises(SlotError):
            Slots(forged)
    with pytest.raises(SlotError):
        slots.slot("password")
    assert Slots(LEGACY_MARKER).EMAIL == "[[digest:email]]"  # issues frozen before markers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('https://e.org/a"onmouseover=alert(1)//', "https://e.org/a%22onmouseover=alert(1)//"),
        ("https://e.org/a b<c>\\d`e'f", "https://e.org/a%20b%3Cc%3E%5Cd%60e%27f"),
        ("https://e.org/?e=[[digest:email]]", "https://e.org/?e=%5B%5Bdigest:email%5D%5D"),
        ("  https://E.org/x\n\ty  ", "https://e.org/xy"),
        ("https://e.org/%7e%zz", "https://e.org/%7e%25zz"),
        ("https://bücher.example/ö", "https://xn--bcher-kva.example/%C3%B6"),
        ("https://[::1]:8080/a", "https://[::1]:8080/a"),
        ("https://e.org/#a#b", "https://e.org/#a%23b"),
        ("https://bank.example@evil.example/", None),
        ("https://evil.example\\@bank.example/", None),
        ("javascript:alert(1)", None),
        ("//e.org/a", None),
        ("https:e.org", None),
        ("ftp://e.org/", None),
        ("mailto:a@e.org", None),
        ("https://" + "a" * 2000 + ".org/", None),
    ],
)
def test_safe_url(value: str, expected: str | None) -> None:
    assert safe_url(value) == expected
    if expected:
        assert safe_url(expected) == expected


def test_safe_link_allows_mailto_too() -> None:
    assert safe_link("mailto:a@e.org?subject=Hi there") == "mailto:a@e.org?subject=Hi%20there"
    assert safe_link("mailto://a@e.org") is None
    assert safe_link("https://e.org/") == "https://e.org/"

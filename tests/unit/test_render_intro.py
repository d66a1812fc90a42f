"""The intro is Markdown: rendered to HTML through the summaries' allow-list, never raw HTML."""

from __future__ import annotations

from dataclasses import replace

import html5lib
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.render.allowlist import check_html
from digest.render.intro import intro_html
from digest.render.issue import render_issue
from tests.fixtures.sample_issue import sample_issue_view

INTRO = """Welcome to **May**'s issue.

Read [the report](https://example.org/report) and:

- one
- two

> quoted"""


def test_markdown_becomes_html_in_the_email_and_stays_markdown_in_the_text() -> None:
    rendered = render_issue(replace(sample_issue_view(items=2), intro=INTRO))
    assert "<strong>May</strong>" in rendered.html
    assert 'href="https://example.org/report"' in rendered.html
    assert "<li>one</li>" in rendered.html and "<blockquote>" in rendered.html
    assert (
        "**May**" in rendered.text and "[the report](https://example.org/report)" in rendered.text
    )


def test_raw_html_and_dangerous_links_in_the_intro_stay_text_or_go() -> None:
    hostile = (
        "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
        '![i](data:image/svg+xml,<svg onload=alert(4)>) [ok](https://example.org/"onmouseover=x)'
    )
    html = intro_html(hostile)
    tree = html5lib.parse(html, namespaceHTMLElements=False)
    assert tree.findall(".//script") == [] and tree.findall(".//img") == []
    for element in tree.iter():
        assert not any(name.startswith("on") for name in element.attrib)
    links = [a.get("href") for a in tree.iter("a")]
    assert links == ["https://example.org/%22onmouseover=x"]  # the rest stayed text
    assert "&lt;script&gt;" in html  # shown as the text the editor typed
    rendered = render_issue(replace(sample_issue_view(items=1), intro=hostile))
    assert "<script" not in rendered.html


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_intro_renders_within_the_allow_list(markdown: str) -> None:
    html = intro_html(markdown)
    check_html(f"<!doctype html><html><body>{html}</body></html>", "intro")

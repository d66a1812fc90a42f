"""render_issue: escaping, placeholders, responsiveness, no web fonts, size warning, cost."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import datetime

import lxml.html
import pytest

from digest import placeholders
from digest.render.errors import MjmlError, RenderError
from digest.render.issue import render_issue, render_mjml_source
from digest.render.view import GroupView, IssueView, ItemView
from tests.fixtures.sample_issue import sample_issue_view

HOSTILE = '<script>alert("x")</script>"><img src=x onerror=alert(1)>'


def item(**changes: object) -> ItemView:
    base = ItemView(
        title="A title",
        url="https://example.org/a",
        summary_html='<p>Summary with <em>emphasis</em> &amp; an <a href="https://e.org/?a=1&amp;b=2">'
        "inner link</a>.</p>",
        summary_text="Summary with emphasis & an inner link.",
        published_at=datetime(2024, 2, 21, 10, 30),
        image_url=None,
        source_name="Source",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def issue(*items: ItemView, **changes: object) -> IssueView:
    base = IssueView(
        list_name="The List",
        list_description="About things.",
        number=3,
        subject="Subject",
        preheader="Preheader text",
        intro="First paragraph.\n\nSecond paragraph.",
        language="en",
        groups=(GroupView("February 2024", items or (item(),)),),
        from_name="The Sender",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def parse(html: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html)


def test_hostile_text_is_escaped_everywhere_and_never_becomes_markup():
    view = issue(
        item(title=HOSTILE, source_name=HOSTILE, image_url="https://e.org/i.png"),
        item(url="javascript:alert(1)", image_url="data:image/png;base64,AAAA", title="Bad URL"),
        list_name=HOSTILE,
        list_description=HOSTILE,
        subject=HOSTILE,
        preheader=HOSTILE,
        intro=HOSTILE,
        footer_address=HOSTILE,
        from_name=HOSTILE,
    )
    view = replace(view, groups=(replace(view.groups[0], label=HOSTILE),))
    rendered = render_issue(view)
    html = rendered.html
    doc = parse(html)
    assert doc.xpath("//script") == []
    assert doc.xpath("//*[@onerror]") == []
    assert [img.get("src") for img in doc.xpath("//img")] == ["https://e.org/i.png"]
    hrefs = doc.xpath("//a/@href")
    assert not [h for h in hrefs if not h.startswith(("https://", f"[[{rendered.slots.marker}:"))]
    # The hostile text is shown as text: in the title, the h1, the image's alt, the subject.
    assert doc.xpath("//h1")[0].text_content() == HOSTILE
    assert doc.xpath("//h3/a")[0].text_content() == HOSTILE
    assert doc.xpath("//img")[0].get("alt") == HOSTILE
    assert doc.xpath("//title")[0].text_content() == HOSTILE
    assert "&lt;script&gt;" in html
    # An item whose URL is not http(s) is shown unlinked, without "Read more".
    unlinked = [h for h in doc.xpath("//h3") if h.text_content().strip() == "Bad URL"]
    assert unlinked and unlinked[0].xpath(".//a") == []


def test_sanitised_summary_html_is_kept_as_markup():
    doc = parse(render_issue(issue()).html)
    assert [e.text for e in doc.xpath("//em")] == ["emphasis"]
    assert "https://e.org/?a=1&b=2" in doc.xpath("//a/@href")


def test_placeholders_come_out_byte_for_byte_in_both_parts():
    rendered = render_issue(issue())
    ph = rendered.slots
    for field in (*placeholders.REQUIRED, placeholders.GREETING_NAME):
        assert ph.slot(field) in rendered.html
        assert ph.slot(field) in rendered.text
    hrefs = parse(rendered.html).xpath("//a/@href")
    for url in (ph.UNSUBSCRIBE_URL, ph.PREFERENCES_URL, ph.VIEW_ONLINE_URL):
        assert url in hrefs
    body = parse(rendered.html).text_content()
    assert f"Hello{ph.GREETING_NAME}," in body
    assert ph.EMAIL in body


def test_each_render_draws_its_own_secret_marker():
    first, second = render_issue(issue()), render_issue(issue())
    assert first.slots != second.slots
    assert first.slots.marker not in second.html and second.slots.marker not in first.html


def test_head_is_accessible_and_fetches_no_web_fonts():
    html = render_issue(sample_issue_view()).html
    doc = parse(html)
    assert doc.get("lang") == "en"
    assert doc.xpath("//title")[0].text_content().startswith("SSE news")
    assert "fonts.googleapis" not in html
    assert "@import url(" not in html
    assert doc.xpath("//link") == []
    # Layout tables are marked as presentation; every image has alt text.
    assert doc.xpath("//table") and not doc.xpath("//table[not(@role='presentation')]")
    images = doc.xpath("//img")
    assert images and all(img.get("alt") for img in images)
    # One heading per level: list name, groups, items.
    assert len(doc.xpath("//h1")) == 1
    assert [h.text_content() for h in doc.xpath("//h2")][:2] == ["February 2024", "January 2024"]
    assert len(doc.xpath("//h3")) == 20


def test_layout_is_single_column_on_mobile():
    html = render_issue(sample_issue_view()).html
    assert "@media only screen and (min-width:480px)" in html  # columns widen on desktop only
    assert "@media only screen and (max-width: 479px)" in html  # our narrow-screen tweaks
    assert "td.pad" in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_preheader_is_the_hidden_first_text():
    doc = parse(render_issue(issue(preheader="Read this first")).html)
    (hidden,) = doc.xpath("//body//div[contains(@style, 'display:none')]")
    assert hidden.text_content().startswith("Read this first")
    # In the page's own colour, not white on grey (SpamAssassin's HTML_FONT_LOW_CONTRAST).
    (body,) = doc.xpath("//body")
    background = re.search(r"background-color:(#[0-9a-f]{6})", body.get("style")).group(1)
    assert f"color:{background};" in hidden.get("style")


def test_other_languages_render_their_words_and_dates():
    rendered = render_issue(issue(language="fr"))
    doc = parse(rendered.html)
    assert doc.get("lang") == "fr"
    body = doc.text_content()
    assert "21 février 2024" in body
    assert "Se désabonner" in body and "Numéro 3" in body
    assert "21 février 2024" in rendered.text and "Se désabonner" in rendered.text
    assert rendered.warnings == ()
    assert parse(render_issue(issue(language="en-GB")).html).get("lang") == "en-GB"
    assert parse(render_issue(issue(language="ar")).html).get("dir") == "rtl"


def test_an_unknown_language_falls_back_to_english_with_a_warning():
    rendered = render_issue(issue(language="xx-nope"))
    assert "Unsubscribe" in rendered.text
    assert len(rendered.warnings) == 1 and "unknown language" in rendered.warnings[0]


def test_accent_color_is_taken_only_when_it_is_a_hex_color():
    assert "#aa3300" in render_issue(issue(extra={"accent_color": "#aa3300"})).html
    html = render_issue(issue(extra={"accent_color": "red;} body{display:none"})).html
    assert "display:none}" not in html and "#1f5fbf" in html


def test_items_without_url_date_summary_or_source_still_render():
    bare = item(url=None, published_at=None, summary_html="", summary_text="", source_name="")
    doc = parse(render_issue(issue(bare)).html)
    assert doc.xpath("//h3")[0].text_content().strip() == "A title"
    assert "Read more" not in doc.text_content()


def test_size_warning_on_a_big_issue_and_not_on_a_small_one():
    small = render_issue(issue())
    assert small.warnings == ()
    long_summary = "<p>" + "A long summary sentence that goes on. " * 60 + "</p>"
    items = tuple(item(title=f"Item {n}", summary_html=long_summary) for n in range(60))
    big = render_issue(issue(*items))
    assert len(big.html.encode()) > 100 * 1024
    assert len(big.warnings) == 1 and "Gmail clips" in big.warnings[0]
    assert "KB" in big.warnings[0]
    # The limit is the caller's: a tiny one warns on the small issue too.
    assert render_issue(issue(), size_warning_bytes=1000).warnings


def test_realistic_20_item_issue_is_small_and_fast(capsys):
    view = sample_issue_view()
    assert view.item_count == 20
    render_issue(view)  # the first call compiles the templates
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        rendered = render_issue(view)
        runs.append(time.perf_counter() - started)
    size = len(rendered.html.encode())
    with capsys.disabled():
        print(
            f"\n20-item issue: HTML {size / 1024:.1f} KB, text {len(rendered.text) / 1024:.1f} KB, "
            f"render {min(runs) * 1000:.1f} ms (best of 5)"
        )
    # One mj-text per group, not per item: the 20 items' wrappers once made this 52 KB.
    assert size < 40 * 1024
    assert rendered.warnings == ()
    assert min(runs) < 1.0


def test_template_and_mjml_errors_are_render_errors(tmp_path):
    (tmp_path / "digest.mjml").write_text("{{ view.nope }}")
    with pytest.raises(RenderError, match=r"digest\.mjml"):
        render_issue(issue(), templates_dir=tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "digest.mjml").write_text("<mjml><mj-body><mj-section>{{ view.number }}")
    with pytest.raises(MjmlError):
        render_issue(issue(), templates_dir=broken)


def test_a_template_that_drops_a_placeholder_is_refused(tmp_path):
    (tmp_path / "digest.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>{{ ph.NAME }}</mj-text></mj-column>"
        "</mj-section></mj-body></mjml>"
    )
    with pytest.raises(RenderError, match="lost placeholders"):
        render_issue(issue(), templates_dir=tmp_path)


def test_mjml_source_is_available_for_debugging():
    source = render_mjml_source(issue())
    assert source.lstrip().startswith("<mjml")
    assert 'overflow:hidden;">Preheader text' in source

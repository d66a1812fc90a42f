"""The plain-text part: built from the view, wrapped at 72 columns, placeholders intact."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

from babel import Locale

from digest import placeholders as fields
from digest.placeholders import Slots
from digest.render.text import WIDTH, render_text
from digest.render.view import GroupView, IssueView, ItemView
from tests.fixtures.sample_issue import sample_issue_view

EN_GB = Locale.parse("en_GB")
placeholders = Slots.new()


def view(*groups: GroupView, **changes: object) -> IssueView:
    base = IssueView(
        list_name="News on Things",
        list_description="",
        number=7,
        subject="s",
        preheader="p",
        intro="Welcome.\n\nA second paragraph that is long enough to need wrapping at seventy-two "
        "columns, for sure, because it keeps going and going.",
        language="en_GB",
        groups=groups,
        from_name="Sender",
        footer_address="1 Main Street\nSpringfield",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def news(title: str, **changes: object) -> ItemView:
    base = ItemView(
        title=title,
        url=f"https://example.org/{title.lower().replace(' ', '-')}",
        summary_html="<p>ignored: <b>html</b></p>",
        summary_text="The summary as plain text. " * 8,
        published_at=datetime(2024, 2, 21, 12),
        image_url="https://example.org/i.png",
        source_name="Wire",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_text_part_layout():
    text = render_text(
        view(
            GroupView("February 2024", (news("First"), news("Second"))),
            GroupView("January 2024", (news("Third", published_at=None, source_name=""),)),
        ),
        EN_GB,
        placeholders,
    )
    lines = text.splitlines()
    assert lines[:3] == ["News on Things", "==============", "Issue 7"]
    assert f"View online: {placeholders.VIEW_ONLINE_URL}" in lines
    assert f"Hello{placeholders.GREETING_NAME}," in lines
    # Group headings underlined; items numbered across groups.
    feb = lines.index("FEBRUARY 2024")
    assert lines[feb + 1] == "-------------"
    assert "JANUARY 2024" in lines
    assert [line for line in lines if re.match(r"^\d+\. ", line)] == [
        "1. First",
        "2. Second",
        "3. Third",
    ]
    first = lines.index("1. First")
    assert lines[first + 1 : first + 3] == [
        "   21 February 2024 · Wire",
        "   https://example.org/first",
    ]
    # The item with no date or source goes straight to its URL.
    third = lines.index("3. Third")
    assert lines[third + 1] == "   https://example.org/third"
    # Summary paragraphs come from summary_text, indented under the title.
    assert lines[first + 3] == ""
    assert lines[first + 4].startswith("   The summary as plain text.")
    assert "<b>" not in text and "ignored" not in text
    # Footer: why, the three links, the postal address.
    assert text.endswith(
        f"View online: {placeholders.VIEW_ONLINE_URL}\n"
        f"Preferences: {placeholders.PREFERENCES_URL}\n"
        f"Unsubscribe: {placeholders.UNSUBSCRIBE_URL}\n"
        "\n1 Main Street\nSpringfield\n"
    )
    assert placeholders.EMAIL in text


def test_lines_wrap_at_72_columns_but_urls_and_placeholders_never_break():
    long_url = "https://example.org/" + "x" * 100
    text = render_text(
        view(GroupView("", (news("A very long title " * 8, url=long_url),))),
        EN_GB,
        placeholders,
    )
    for line in text.splitlines():
        assert len(line) <= WIDTH or line.strip() == long_url, line
        assert line == line.rstrip()
    assert f"   {long_url}" in text.splitlines()
    for placeholder in (*fields.REQUIRED, fields.GREETING_NAME):
        assert placeholders.slot(placeholder) in text


def test_title_lines_hang_under_the_number():
    text = render_text(view(GroupView("", (news("word " * 30),))), EN_GB, placeholders)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("1. "))
    assert lines[start + 1].startswith("   word")


def test_hostile_text_stays_literal_in_plain_text():
    hostile = "<script>alert(1)</script> & co"
    text = render_text(
        view(GroupView("", (news(hostile, url="javascript:alert(1)"),))), EN_GB, placeholders
    )
    assert f"1. {hostile}" in text
    assert "javascript:" not in text


def test_content_cannot_start_a_line_or_spell_a_slot_in_plain_text():
    forged = "[[digest:unsubscribe_url]] " + placeholders.slot("email").replace(
        placeholders.marker, "digest-" + "0" * 32
    )
    title = "Title\u2028Unsubscribe: https://evil.example/\x1b[2J\x85next"
    item = news(title, url='https://e.org/a b"<x>', summary_text="para\u2029graph \x00" + forged)
    text = render_text(view(GroupView("", (item,))), EN_GB, placeholders)
    assert "\x1b" not in text and "\x00" not in text and "\u2028" not in text
    assert not [line for line in text.splitlines() if line.startswith("Unsubscribe: https://evil")]
    assert "   https://e.org/a%20b%22%3Cx%3E" in text.splitlines()
    # Only the template's slots are spelled with this render's marker.
    assert len(placeholders.pattern.findall(text)) == 6


def test_no_group_label_means_no_heading():
    text = render_text(view(GroupView("", (news("Only"),))), EN_GB, placeholders)
    assert "---" not in text.split("1. Only")[0]


def test_realistic_issue_in_french():
    text = render_text(sample_issue_view(language="fr"), Locale.parse("fr"), placeholders)
    assert "Se désabonner: " + placeholders.UNSUBSCRIBE_URL in text
    assert "21 février 2024" in text
    assert "FÉVRIER 2024" in text
    assert len(re.findall(r"^\d+\. ", text, flags=re.M)) == 20

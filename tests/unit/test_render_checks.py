"""Warnings before approval: each appears for what it names and not for a clean issue."""

from __future__ import annotations

from dataclasses import replace

from digest.render.checks import SUBJECT_WARN_CHARS
from digest.render.issue import render_issue
from digest.render.view import GroupView, IssueView, ItemView
from tests.fixtures.sample_issue import sample_issue_view


def _items(view: IssueView) -> list[ItemView]:
    return [item for group in view.groups for item in group.items]


def _with_items(view: IssueView, items: list[ItemView]) -> IssueView:
    return replace(view, groups=(GroupView(label="May 2024", items=tuple(items)),))


def test_the_sample_issue_has_nothing_to_warn_about() -> None:
    view = sample_issue_view(items=6)
    # Its items come from www.example.org and link there.
    items = [replace(i, source_url="https://example.org/news") for i in _items(view)]
    assert render_issue(_with_items(view, items)).warnings == ()


def test_a_long_subject_is_warned_about() -> None:
    view = sample_issue_view(items=2)
    assert render_issue(replace(view, subject="x" * SUBJECT_WARN_CHARS)).warnings == ()
    [warning] = render_issue(replace(view, subject="x" * (SUBJECT_WARN_CHARS + 1))).warnings
    assert "subject is 71 characters" in warning


def test_an_empty_group_is_warned_about() -> None:
    view = sample_issue_view(items=2)
    groups = (*view.groups, GroupView(label="April 2024", items=()))
    [warning] = render_issue(replace(view, groups=groups)).warnings
    assert "'April 2024' has no items" in warning


def test_images_without_alt_text_are_warned_about() -> None:
    view = sample_issue_view(items=2)
    first, second = _items(view)
    summary = (
        '<p>Chart: <img src="https://example.org/chart.png"> and '
        '<img src="https://example.org/b.png" alt=" "></p>'
    )
    items = [replace(first, summary_html=summary), replace(second, title="")]
    items[1] = replace(items[1], image_url="https://example.org/photo.jpg")
    [warning] = render_issue(_with_items(view, items)).warnings
    assert warning.startswith("3 image(s) have no alt text")
    assert "chart.png" in warning and "b.png" in warning and "photo.jpg" in warning


def test_a_link_to_another_host_than_its_source_is_warned_about() -> None:
    view = sample_issue_view(items=4)
    a, b, c, d = _items(view)
    items = [
        replace(a, url="https://news.example.org/a", source_url="https://www.example.org/feed"),
        replace(b, url="https://example.org/b", source_url="https://blog.example.org/feed"),
        replace(c, url="https://example.org.evil.test/c", source_url="https://example.org/"),
        replace(d, url="https://example.org/d", source_url="/srv/pages/news.html"),  # a file
    ]
    [warning] = render_issue(_with_items(view, items)).warnings
    assert warning.startswith("1 item(s) link to another site")
    assert f"{c.title!r} links to example.org.evil.test, not to example.org" in warning


def test_many_findings_are_counted_not_listed() -> None:
    view = sample_issue_view(items=2)
    [item, _] = _items(view)
    items = [
        replace(item, title=f"t{n}", url=f"https://h{n}.test/", source_url="https://example.org/")
        for n in range(8)
    ]
    [warning] = render_issue(_with_items(view, items)).warnings
    assert warning.startswith("8 item(s)") and warning.endswith("and 3 more")

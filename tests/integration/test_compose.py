"""Compose on both stores: selection since the previous issue, grouping, editing a draft."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import DigestError
from digest.issues import lifecycle
from digest.issues.compose import compose_issue
from digest.models import Issue, IssueItem, Item, MailingList, Source
from digest.subscribers.lists import create_list, link_source

NOW = datetime(2024, 3, 1, 9, 0)


def _setup(session: Session, grouping: str = "month", language: str = "en") -> tuple[int, Source]:
    lst = create_list(
        session, slug="news", name="News", lookback_days=90, grouping=grouping, language=language
    )
    source = Source(name="Site", url="http://127.0.0.1/news", kind="html")
    session.add(source)
    session.flush()
    link_source(session, lst.id, source.id)
    return lst.id, source


def _item(
    session: Session, source: Source, n: int, published: datetime | None, seen: datetime
) -> Item:
    item = Item(
        source_id=source.id,
        guid=f"g{n}",
        url=f"http://127.0.0.1/n/{n}",
        canonical_url=f"http://127.0.0.1/n/{n}",
        title=f"Item {n}",
        published_at=published,
        first_seen_at=seen,
    )
    session.add(item)
    session.flush()
    return item


def test_first_issue_takes_lookback_then_only_new(session: Session) -> None:
    list_id, src = _setup(session)
    old = _item(session, src, 1, datetime(2023, 1, 5), NOW - timedelta(days=1))  # outside lookback
    feb = _item(session, src, 2, datetime(2024, 2, 21), NOW - timedelta(days=1))
    jan = _item(session, src, 3, datetime(2024, 1, 31), NOW - timedelta(days=1))
    undated = _item(session, src, 4, None, NOW - timedelta(days=2))
    issue = compose_issue(session, list_id, now=NOW)
    assert issue is not None
    got = [ii.item_id for ii in sorted(issue.issue_items, key=lambda i: i.position)]
    # newest first; an undated item is dated by first-seen
    assert got == [undated.id, feb.id, jan.id]
    assert old.id not in got
    labels = [ii.group_label for ii in sorted(issue.issue_items, key=lambda i: i.position)]
    assert labels == ["February 2024", "February 2024", "January 2024"]
    lifecycle.mark_approved(session, issue.id)

    # Nothing new: nothing created.
    assert compose_issue(session, list_id, now=NOW + timedelta(days=30)) is None
    assert session.scalar(select(Issue).where(Issue.number == 2)) is None

    # A late-discovered item (published before the last issue, seen after) makes the next one;
    # an archive item from long before does not.
    later = NOW + timedelta(days=31)
    late = _item(session, src, 5, NOW - timedelta(days=3), NOW + timedelta(days=2))
    _item(session, src, 6, NOW - timedelta(days=400), NOW + timedelta(days=2))
    fresh = _item(session, src, 7, NOW + timedelta(days=10), NOW + timedelta(days=10))
    second = compose_issue(session, list_id, now=later)
    assert second is not None and second.number == 2
    assert sorted(ii.item_id for ii in second.issue_items) == sorted([late.id, fresh.id])


def test_item_never_in_two_issues_and_draft_blocks_next(session: Session) -> None:
    list_id, src = _setup(session)
    _item(session, src, 1, NOW - timedelta(days=3), NOW - timedelta(days=3))
    issue = compose_issue(session, list_id, now=NOW)
    assert issue is not None
    with pytest.raises(DigestError, match="draft"):
        compose_issue(session, list_id, now=NOW + timedelta(days=1))
    lifecycle.mark_approved(session, issue.id)
    assert compose_issue(session, list_id, now=NOW + timedelta(days=1)) is None
    count = session.scalar(select(IssueItem.id).where(IssueItem.issue_id != issue.id))
    assert count is None


def test_editor_drops_reorders_and_sets_intro(session: Session) -> None:
    list_id, src = _setup(session)
    items = [_item(session, src, n, NOW - timedelta(days=n), NOW) for n in range(1, 5)]
    issue = compose_issue(session, list_id, now=NOW)
    assert issue is not None
    lifecycle.drop_item(session, issue.id, items[1].id)
    lifecycle.move_item(session, issue.id, items[3].id, 0)
    lifecycle.edit_draft(session, issue.id, intro="Hello readers.", subject="  March   news ")
    session.expire_all()
    issue = session.get(Issue, issue.id)
    assert issue is not None
    order = [ii.item_id for ii in sorted(issue.issue_items, key=lambda i: i.position)]
    assert order == [items[3].id, items[0].id, items[2].id]
    assert issue.subject == "March news" and issue.intro == "Hello readers."
    with pytest.raises(DigestError):
        lifecycle.move_item(session, issue.id, items[0].id, 7)
    # An editor's drop is final: the next issue starts after this one.
    lifecycle.mark_approved(session, issue.id)
    assert compose_issue(session, list_id, now=NOW + timedelta(days=1)) is None


@pytest.mark.parametrize(
    ("language", "label"),
    [("fr", "Février 2024"), ("en-GB", "February 2024"), ("xx-nope", "February 2024")],
)
def test_month_labels_speak_the_lists_language(session: Session, language: str, label: str) -> None:
    # Any language render accepts composes too; an unknown one (a list stored before lists
    # were checked) falls back to English.
    list_id, src = _setup(session, grouping="month", language="en")
    session.get_one(MailingList, list_id).language = language
    _item(session, src, 1, datetime(2024, 2, 21), NOW)
    issue = compose_issue(session, list_id, now=NOW)
    assert issue is not None
    assert issue.issue_items[0].group_label == label


def test_group_by_source_keeps_each_sources_items_together(session: Session) -> None:
    list_id, site = _setup(session, grouping="source")
    wire = Source(name="Wire", url="http://127.0.0.1/wire", kind="html")
    session.add(wire)
    session.flush()
    link_source(session, list_id, wire.id)
    w1 = _item(session, wire, 1, datetime(2024, 2, 20), NOW)
    s1 = _item(session, site, 2, datetime(2024, 2, 15), NOW)
    w2 = _item(session, wire, 3, datetime(2024, 2, 10), NOW)
    s2 = _item(session, site, 4, datetime(2024, 2, 5), NOW)
    issue = compose_issue(session, list_id, now=NOW)
    assert issue is not None
    ordered = sorted(issue.issue_items, key=lambda i: i.position)
    # Sources in the order of their newest item, each one's items newest first.
    assert [ii.item_id for ii in ordered] == [w1.id, w2.id, s1.id, s2.id]
    assert [ii.group_label for ii in ordered] == ["Wire", "Wire", "Site", "Site"]


def test_discarded_draft_frees_items(session: Session) -> None:
    list_id, src = _setup(session)
    item = _item(session, src, 1, NOW - timedelta(days=1), NOW)
    issue = compose_issue(session, list_id, now=NOW)
    assert issue is not None
    lifecycle.discard_draft(session, issue.id)
    again = compose_issue(session, list_id, now=NOW)
    assert again is not None and [ii.item_id for ii in again.issue_items] == [item.id]
    assert again.number == 1


def test_items_past_max_items_are_reported_not_silently_lost(session: Session) -> None:
    list_id, src = _setup(session)
    for n in range(1, 6):
        _item(session, src, n, NOW - timedelta(days=n), NOW)
    lst = session.get(MailingList, list_id)
    assert lst is not None
    lst.max_items = 3
    issue = compose_issue(session, list_id, now=NOW)
    assert issue is not None
    titles = [ii.item.title for ii in sorted(issue.issue_items, key=lambda i: i.position)]
    assert titles == ["Item 1", "Item 2", "Item 3"]
    assert issue.compose_notes == [
        "2 older items were left out: the list takes at most 3 per issue"
    ]

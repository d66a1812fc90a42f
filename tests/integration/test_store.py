"""The store behaves the same on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.errors import NotFound
from digest.models import Issue, IssueItem, Item, MailingList, Source
from digest.subscribers.lists import create_list, get_list


def _list_with_item(session: Session) -> tuple[MailingList, Item]:
    source = Source(name="s", url="http://127.0.0.1/feed", kind="feed")
    lst = MailingList(slug="news", name="News", sources=[source])
    item = Item(source=source, guid="g1", url="http://x/1", canonical_url="http://x/1", title="t")
    session.add_all([lst, item])
    session.flush()
    return lst, item


def test_item_guid_unique_per_source(session: Session) -> None:
    _lst, item = _list_with_item(session)
    session.add(Item(source_id=item.source_id, guid="g1", title="again"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_item_in_at_most_one_issue_of_a_list(session: Session) -> None:
    lst, item = _list_with_item(session)
    first = Issue(list_id=lst.id, number=1, subject="1")
    second = Issue(list_id=lst.id, number=2, subject="2")
    session.add_all([first, second])
    session.flush()
    session.add(IssueItem(issue_id=first.id, list_id=lst.id, item_id=item.id, position=0))
    session.flush()
    session.add(IssueItem(issue_id=second.id, list_id=lst.id, item_id=item.id, position=0))
    with pytest.raises(IntegrityError):
        session.flush()


def test_json_columns_round_trip(session: Session) -> None:
    source = Source(
        name="s", url="http://127.0.0.1/page", kind="html", selectors={"item": "li", "max_pages": 3}
    )
    session.add(source)
    session.commit()
    session.expire_all()
    got = session.scalars(select(Source)).one()
    assert got.selectors == {"item": "li", "max_pages": 3}


def test_get_list_by_slug_or_id_and_an_all_digit_slug_wins(session: Session) -> None:
    first = create_list(session, slug="news", name="News")
    year = create_list(session, slug="2024", name="Year")
    session.flush()
    assert get_list(session, "news") is first and get_list(session, first.id) is first
    assert get_list(session, str(first.id)) is first  # an id given as text (a CLI argument)
    assert get_list(session, "2024") is year  # the slug, not a list with id 2024
    with pytest.raises(NotFound):
        get_list(session, "9999")

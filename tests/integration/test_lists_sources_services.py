"""The services behind the list and source pages, on both stores: a single opt-in list
subscribes a public sign-up at once (no mail) but never brings back a stopped subscription; a
disabled source is not due, not collected by a scheduled issue, and fetched only on demand; a
source's history keeps its newest fetches; the schedule phrases and templates are checked."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.errors import DigestError
from digest.models import (
    Event,
    EventKind,
    MailingList,
    Source,
    SourceFetch,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from digest.sources import history
from digest.sources.due import due_source_ids
from digest.sources.listing import Selectors
from digest.sources.registry import set_enabled, update_source
from digest.subscribers.list_settings import (
    InvalidSettings,
    check_template,
    describe_schedule,
    parse_schedule,
)
from digest.subscribers.lists import create_list, link_source, update_list
from digest.web.app import create_app
from tests.helpers import outbox_messages

NOW = datetime(2024, 3, 1, 9, 0)


def test_single_opt_in_subscribes_at_once_and_never_revives_a_stopped_one(
    session: Session, db_url: str
) -> None:
    lst = create_list(session, slug="news", name="News", opt_in="single")
    session.commit()
    client = TestClient(create_app(), follow_redirects=False)
    answer = client.post("/s/news", data={"email": "ada@example.org"})
    assert answer.status_code == 200 and "it is subscribed" in answer.text
    session.expire_all()
    assert session.scalar(select(Subscription.status)) == SubscriptionStatus.CONFIRMED
    assert not Path("outbox").exists() or outbox_messages(Path("outbox")) == []
    kinds = list(session.scalars(select(Event.kind).order_by(Event.id)))
    assert kinds == [EventKind.CONFIRMED, EventKind.SIGNUP]

    # Unsubscribed: a stranger's sign-up does not bring it back; its owner gets the link.
    carol = Subscriber(email="carol@example.org")
    session.add(carol)
    session.flush()
    session.add(
        Subscription(
            list_id=lst.id,
            subscriber_id=carol.id,
            status=SubscriptionStatus.UNSUBSCRIBED,
            unsubscribed_at=datetime.now(),
        )
    )
    session.commit()
    client.post("/s/news", data={"email": "carol@example.org"})
    session.expire_all()
    stopped = session.scalar(select(Subscription).where(Subscription.subscriber_id == carol.id))
    assert stopped is not None and stopped.status == SubscriptionStatus.UNSUBSCRIBED
    (mail,) = outbox_messages(Path("outbox"))
    assert mail["To"] == "carol@example.org"

    # Double opt-in again: the next one is mailed and stays pending.
    update_list(session, lst.id, {"opt_in": "double"})
    session.commit()
    client.post("/s/news", data={"email": "bob@example.org"})
    session.expire_all()
    statuses = dict(session.execute(select(Subscription.subscriber_id, Subscription.status)).all())
    assert sorted(statuses.values()) == ["confirmed", "pending", "unsubscribed"]


def test_a_disabled_source_is_never_due(session: Session) -> None:
    lst = create_list(session, slug="news", name="News")
    on = Source(name="On", url="https://on.example.org/feed", kind="feed")
    off = Source(name="Off", url="https://off.example.org/feed", kind="feed")
    session.add_all([on, off])
    session.flush()
    link_source(session, lst.id, on.id)
    link_source(session, lst.id, off.id)
    set_enabled(session, off.id, False)
    assert due_source_ids(session, NOW) == [on.id]
    off.next_fetch_at = NOW + timedelta(days=3)
    set_enabled(session, off.id, True)
    assert off.next_fetch_at is None and due_source_ids(session, NOW) == [on.id, off.id]


def test_history_keeps_the_newest_fetches(session: Session) -> None:
    source = Source(name="S", url="https://s.example.org/feed", kind="feed")
    session.add(source)
    session.flush()
    for n in range(history.KEEP + 7):
        history.record_fetch(session, source.id, NOW + timedelta(minutes=n), new=n % 3, seen=5)
    history.record_fetch(session, source.id, NOW + timedelta(days=1), error="HTTP 500")
    count = session.scalar(select(func.count()).select_from(SourceFetch))
    assert count == history.KEEP
    latest = history.recent_fetches(session, source.id, limit=2)
    assert [f.outcome for f in latest] == ["error", "new_items"]
    assert latest[0].error == "HTTP 500"


def test_selectors_of_a_feed_are_refused_and_changed_ones_drop_the_validators(
    session: Session,
) -> None:
    feed = Source(name="F", url="https://f.example.org/feed", kind="feed")
    page = Source(name="P", url="https://p.example.org/news", kind="html", etag='"v1"')
    session.add_all([feed, page])
    session.flush()
    with pytest.raises(DigestError, match="a feed has no selectors"):
        update_source(session, feed.id, selectors=Selectors(item="li"))
    _source, changed = update_source(session, page.id, selectors=Selectors(item="article"))
    assert changed == ["selectors"] and page.etag is None
    with pytest.raises(DigestError, match="unknown language"):
        update_source(session, page.id, language="zz-nope")
    with pytest.raises(DigestError, match="control characters"):
        update_source(session, page.id, name="Evil\x00name")


@pytest.mark.parametrize(
    ("text", "cron"),
    [
        ("monthly 1 09:00", "0 9 1 * *"),
        ("Monthly on day 15 at 18:30", "30 18 15 * *"),
        ("weekly friday 7:05", "5 7 * * 5"),
        ("daily 00:00", "0 0 * * *"),
        ("0 */6 * * *", "0 */6 * * *"),
    ],
)
def test_schedule_phrases(text: str, cron: str) -> None:
    assert parse_schedule(text) == cron
    assert parse_schedule(describe_schedule(cron)) == cron


@pytest.mark.parametrize(
    "text", ["", "monthly 0 09:00", "weekly xyz 09:00", "daily 24:00", "* * *", "x" * 500]
)
def test_bad_schedules(text: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(text)


def test_templates_use_only_their_fields_plainly() -> None:
    assert check_template("{list}: {count} new in {month}", 300, "subject")
    for bad in ("{0}", "{list[0]}", "{count!r}", "{number:>{count}}", "{", "}", "a\nb"):
        with pytest.raises(ValueError):
            check_template(bad, 300, "subject")


def test_every_refused_field_is_named_and_nothing_changes(session: Session) -> None:
    lst = create_list(session, slug="news", name="News")
    with pytest.raises(InvalidSettings) as refused:
        update_list(
            session,
            "news",
            {"timezone": "Nowhere", "max_items": 0, "from_email": "x@", "name": " "},
        )
    assert set(refused.value.errors) == {"timezone", "max_items", "from_email", "name"}
    session.refresh(lst)
    assert (lst.timezone, lst.max_items, lst.name) == ("UTC", 50, "News")
    with pytest.raises(InvalidSettings, match="no such setting"):
        update_list(session, "news", {"schedule_cron": "* * * * *"})
    assert session.scalar(select(func.count()).select_from(MailingList)) == 1

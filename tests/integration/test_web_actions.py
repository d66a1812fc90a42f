"""The subscriber actions the web pages call, straight on the store (both back ends)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from digest.models import Event, Subscriber, Subscription, utcnow
from digest.subscribers import actions
from tests.integration.test_web_pages import seed


def _events(session, kind: str) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.kind == kind)))


def test_unsubscribe_does_not_commit(session) -> None:
    seeded = seed(session)
    assert actions.unsubscribe(session, seeded.subscription_id, via="test") is True
    session.rollback()  # the caller owns the transaction
    row = session.get(Subscription, seeded.subscription_id)
    assert row is not None and row.status == "confirmed" and row.unsubscribed_at is None
    assert _events(session, "unsubscribed") == []


def test_unsubscribe_then_again_is_a_no_op(session) -> None:
    seeded = seed(session)
    assert actions.unsubscribe(session, seeded.subscription_id, via="one-click") is True
    session.commit()
    assert actions.unsubscribe(session, seeded.subscription_id, via="web") is False
    session.commit()
    [event] = _events(session, "unsubscribed")
    assert event.detail == {"via": "one-click"}


@pytest.mark.parametrize("status", ["bounced", "complained"])
def test_a_stopped_address_stays_stopped(session, status: str) -> None:
    """Unsubscribe and resubscribe never overwrite a bounce or a complaint."""
    seeded = seed(session, status=status)
    assert actions.unsubscribe(session, seeded.subscription_id, via="web") is False
    assert actions.resubscribe(session, seeded.subscription_id, via="web") is False
    session.commit()
    session.expire_all()
    assert session.get(Subscription, seeded.subscription_id).status == status
    assert session.scalars(select(Event)).all() == []


def test_resubscribe_confirms_and_keeps_the_first_confirmation_time(session) -> None:
    seeded = seed(session)
    row = session.get(Subscription, seeded.subscription_id)
    first = row.confirmed_at = utcnow().replace(microsecond=0)
    session.commit()
    assert actions.resubscribe(session, seeded.subscription_id, via="web") is False  # not out
    assert actions.unsubscribe(session, seeded.subscription_id, via="web")
    assert actions.resubscribe(session, seeded.subscription_id, via="web")
    session.commit()
    session.expire_all()
    row = session.get(Subscription, seeded.subscription_id)
    assert (row.status, row.unsubscribed_at, row.confirmed_at) == ("confirmed", None, first)
    assert [e.detail for e in _events(session, "resubscribed")] == [{"via": "web"}]


def test_confirm_only_moves_pending(session) -> None:
    seeded = seed(session, status="pending")
    assert actions.confirm(session, seeded.subscription_id) is True
    assert actions.confirm(session, seeded.subscription_id) is False
    session.commit()
    assert len(_events(session, "confirmed")) == 1


def test_update_preferences_merges_and_reports_changes(session) -> None:
    seeded = seed(session)
    sid = seeded.subscription_id
    assert actions.update_preferences(session, sid, name="Ada", preferences={}) is False
    assert actions.update_preferences(session, sid, preferences={"format": "text"}) is True
    assert actions.update_preferences(session, sid, preferences={"format": "text"}) is False
    assert actions.update_preferences(session, sid, name=" Ada  L. ", preferences={"x": 1})
    session.commit()
    session.expire_all()
    assert session.get(Subscription, sid).preferences == {"format": "text", "x": 1}
    assert session.get(Subscriber, seeded.subscriber_id).name == "Ada L."
    details = [e.detail for e in _events(session, "preferences_updated")]
    assert details == [{"changed": ["format"]}, {"changed": ["name", "x"]}]


def test_unknown_subscription_is_a_lookup_error(session) -> None:
    with pytest.raises(actions.SubscriptionNotFound):
        actions.unsubscribe(session, 12345, via="web")
    with pytest.raises(actions.SubscriptionNotFound):
        actions.resubscribe(session, 12345, via="web")
    with pytest.raises(actions.SubscriptionNotFound):
        actions.confirm(session, 12345)
    with pytest.raises(actions.SubscriptionNotFound):
        actions.update_preferences(session, 12345, name="x")

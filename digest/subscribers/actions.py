"""What a subscriber does to a subscription: confirm, unsubscribe, resubscribe, preferences.

Each change is one conditional UPDATE whose row count says whether it happened, so a repeated
or concurrent call (a mail provider's one-click POST racing the subscriber's own click) changes
nothing and writes no second event. The caller commits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, update
from sqlalchemy.orm import Session

from digest.models import (
    RECEIVING,
    STOPPED,
    Event,
    EventKind,
    SignupOutcome,
    SignupRequest,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from digest.subscribers.topics import clean_language, clean_timezone, resolve_topics

NAME_MAX = 200
_SPACES = re.compile(r"\s+")


class SubscriptionNotFound(LookupError):
    """No subscription has this id."""


def get_subscription(session: Session, subscription_id: int) -> Subscription:
    subscription = session.get(Subscription, subscription_id)
    if subscription is None:
        raise SubscriptionNotFound(f"subscription {subscription_id} does not exist")
    return subscription


def _record(session: Session, kind: EventKind, subscription: Subscription, **detail: Any) -> None:
    session.add(
        Event(
            kind=kind,
            subscriber_id=subscription.subscriber_id,
            list_id=subscription.list_id,
            detail=detail,
        )
    )


def _transition(
    session: Session,
    subscription_id: int,
    from_statuses: tuple[SubscriptionStatus, ...],
    *,
    also: ColumnElement[bool] | None = None,
    **values: Any,
) -> Subscription | None:
    """Move the row to new values if it is in one of `from_statuses` (or `also` holds);
    None when it was not."""
    subscription = get_subscription(session, subscription_id)
    allowed: ColumnElement[bool] = Subscription.status.in_(from_statuses)
    if also is not None:
        allowed = or_(allowed, also)
    result = session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id, allowed)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    session.refresh(subscription)
    return subscription


def unsubscribe(session: Session, subscription_id: int, *, via: str) -> bool:
    """Stop mail from this list; False (and nothing written) when it was already stopped."""
    subscription = _transition(
        session,
        subscription_id,
        RECEIVING,
        status=SubscriptionStatus.UNSUBSCRIBED,
        unsubscribed_at=utcnow(),
    )
    if subscription is None:
        return False
    _record(session, EventKind.UNSUBSCRIBED, subscription, via=via)
    return True


def resubscribe(session: Session, subscription_id: int, *, via: str) -> bool:
    """Undo an unsubscribe. The request came through a signed link mailed to the address,
    which proves the subscriber controls it: the subscription is confirmed."""
    current = get_subscription(session, subscription_id)
    subscription = _transition(
        session,
        subscription_id,
        (SubscriptionStatus.UNSUBSCRIBED,),
        status=SubscriptionStatus.CONFIRMED,
        unsubscribed_at=None,
        confirmed_at=current.confirmed_at or utcnow(),
    )
    if subscription is None:
        return False
    _record(session, EventKind.RESUBSCRIBED, subscription, via=via)
    return True


def confirm(session: Session, subscription_id: int) -> bool:
    """Double opt-in: a pending subscription becomes confirmed. So does a stopped one
    (unsubscribed, bounced, complained) once a confirmation was mailed after it stopped: a
    stranger's sign-up never brings it back, its owner's click on that mail does.
    False when nothing changed."""
    stopped_at = func.coalesce(Subscription.unsubscribed_at, Subscription.created_at)
    mailed_since = exists().where(
        SignupRequest.subscription_id == Subscription.id,
        SignupRequest.outcome == SignupOutcome.SENT,
        SignupRequest.sent_at >= stopped_at,
    )
    subscription = _transition(
        session,
        subscription_id,
        (SubscriptionStatus.PENDING,),
        also=and_(Subscription.status.in_(STOPPED), mailed_since),
        status=SubscriptionStatus.CONFIRMED,
        confirmed_at=utcnow(),
        unsubscribed_at=None,
    )
    if subscription is None:
        return False
    _record(session, EventKind.CONFIRMED, subscription)
    return True


def clean_name(name: str) -> str:
    """One line, no control or format characters, capped: the name lands in every greeting."""
    # A printable string's only C/Z characters are ASCII spaces: imports skip the slow scan.
    if not name.isprintable():
        name = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in name)
    return _SPACES.sub(" ", name).strip()[:NAME_MAX]


def update_preferences(
    session: Session,
    subscription_id: int,
    *,
    name: str | None = None,
    preferences: dict[str, Any] | None = None,
    language: str | None = None,
    timezone: str | None = None,
    topics: Sequence[str] | None = None,
) -> bool:
    """Save what the preferences page edits; True when something changed (and an event says what).

    The name, language and time zone belong to the subscriber, so they change on every list
    they read ("" clears the language or zone: the list's then); `topics` (slugs or ids of
    the list's topics, none: everything) and `preferences` are the subscription's own.
    Bad values raise DigestError and change nothing.
    """
    subscription = get_subscription(session, subscription_id)
    subscriber = session.get(Subscriber, subscription.subscriber_id)
    assert subscriber is not None  # the foreign key guarantees it
    wanted_language = clean_language(language) if language is not None else subscriber.language
    wanted_zone = clean_timezone(timezone) if timezone is not None else subscriber.timezone
    wanted_topics = (
        resolve_topics(session, subscription.list_id, topics)
        if topics is not None
        else subscription.topic_ids
    )
    changed: list[str] = []
    if name is not None:
        cleaned = clean_name(name)
        if cleaned != subscriber.name:
            subscriber.name = cleaned
            changed.append("name")
    if wanted_language != subscriber.language:
        subscriber.language = wanted_language
        changed.append("language")
    if wanted_zone != subscriber.timezone:
        subscriber.timezone = wanted_zone
        changed.append("timezone")
    if wanted_topics != subscription.topic_ids:
        subscription.topic_ids = wanted_topics
        changed.append("topics")
    if preferences:
        current = subscription.preferences or {}
        differing = sorted(k for k, v in preferences.items() if current.get(k, object()) != v)
        if differing:
            # A new dict, so the JSON column sees the change.
            subscription.preferences = {**current, **preferences}
            changed.extend(differing)
    if not changed:
        return False
    _record(session, EventKind.PREFERENCES_UPDATED, subscription, changed=changed)
    session.flush()
    return True

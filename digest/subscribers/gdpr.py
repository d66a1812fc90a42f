"""A person's data (GDPR): all we hold about one subscriber as JSON, and its erasure.

Erasure deletes every row that names the person (subscriber, subscriptions, events, sign-up
requests, deliveries, delivery events, their clear suppression) and keeps only a hashed
suppression (`suppression.erased_key`), so that no list, import or admin mails them again.

Deliveries are deleted, not anonymised: a delivery row is one person's receipt of one issue
(its id is in the Message-ID and the VERP address the mail carried, its error text may quote
the address), so an "anonymised" row would still point at them. What they add to an issue's
figures is not lost: their counts go to `issue_totals`, as retention's do
(`digest.retention.add_totals`), so an issue's totals are the live rows plus those. The
events about an issue (bounces, complaints ...) are counted there too.
The caller commits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from digest.models import (
    Delivery,
    DeliveryEvent,
    Event,
    MailingList,
    SignupRequest,
    Subscriber,
    Subscription,
    Suppression,
    SuppressionReason,
    TotalRecord,
)
from digest.retention import add_totals
from digest.subscribers.addresses import display_email
from digest.subscribers.manage import get_subscriber
from digest.subscribers.suppression import (
    ERASED_DETAIL,
    address_key,
    erased_key,
    suppress,
    unsuppress,
)

FORMAT = "digest.person/1"


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def _deliveries(subscriber: Subscriber) -> Any:
    # Every delivery row carries its subscriber's id (ix_deliveries_subscriber).
    return Delivery.subscriber_id == subscriber.id


def _delivery_events(subscriber: Subscriber) -> Any:
    return or_(
        DeliveryEvent.subscriber_id == subscriber.id, DeliveryEvent.email == subscriber.email
    )


def person_data(session: Session, subscriber_id: int) -> dict[str, Any]:
    """Everything stored about one subscriber, as plain JSON values (a download)."""
    s = get_subscriber(session, subscriber_id)
    subscriptions = session.execute(
        select(Subscription, MailingList.slug)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.subscriber_id == s.id)
        .order_by(Subscription.id)
    ).all()
    events = session.scalars(
        select(Event).where(Event.subscriber_id == s.id).order_by(Event.id)
    ).all()
    deliveries = session.scalars(select(Delivery).where(_deliveries(s)).order_by(Delivery.id)).all()
    delivery_events = session.scalars(
        select(DeliveryEvent).where(_delivery_events(s)).order_by(DeliveryEvent.id)
    ).all()
    signups = session.scalars(
        select(SignupRequest).where(SignupRequest.email == s.email).order_by(SignupRequest.id)
    ).all()
    suppression = session.scalar(
        select(Suppression).where(Suppression.email == address_key(s.email))
    )
    return {
        "format": FORMAT,
        "subscriber": {
            "id": s.id,
            "email": display_email(s.email),
            "name": s.name,
            "language": s.language,
            "timezone": s.timezone,
            "attributes": s.attributes or {},
            "created_at": _when(s.created_at),
        },
        "subscriptions": [
            {
                "id": sub.id,
                "list": slug,
                "status": str(sub.status),
                "topics": sub.topic_ids,
                "preferences": sub.preferences or {},
                "created_at": _when(sub.created_at),
                "confirmed_at": _when(sub.confirmed_at),
                "unsubscribed_at": _when(sub.unsubscribed_at),
            }
            for sub, slug in subscriptions
        ],
        "events": [
            {
                "kind": str(e.kind),
                "list_id": e.list_id,
                "issue_id": e.issue_id,
                "detail": e.detail or {},
                "created_at": _when(e.created_at),
            }
            for e in events
        ],
        "signup_requests": [
            {
                "list_id": r.list_id,
                "outcome": str(r.outcome) if r.outcome else None,
                "created_at": _when(r.created_at),
                "sent_at": _when(r.sent_at),
            }
            for r in signups
        ],
        "deliveries": [
            {
                "id": d.id,
                "issue_id": d.issue_id,
                "status": str(d.status),
                "attempts": d.attempts,
                "sent_at": _when(d.sent_at),
                "last_error": d.last_error,
            }
            for d in deliveries
        ],
        "delivery_events": [
            {
                "verdict": str(e.verdict),
                "action": str(e.action),
                "via": str(e.via),
                "issue_id": e.issue_id,
                "status": e.status,
                "detail": e.detail,
                "created_at": _when(e.created_at),
            }
            for e in delivery_events
        ],
        "suppression": (
            {
                "reason": str(suppression.reason),
                "detail": suppression.detail,
                "created_at": _when(suppression.created_at),
            }
            if suppression
            else None
        ),
    }


@dataclass(frozen=True, slots=True)
class Erased:
    """What went: counts only (the address is not repeated anywhere, the audit log included)."""

    subscriptions: int
    events: int
    deliveries: int
    delivery_events: int
    signup_requests: int


def _gone(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def erase(session: Session, subscriber_id: int) -> Erased:
    """Delete everything about the person; keep a hashed suppression of their address."""
    s = get_subscriber(session, subscriber_id)
    address = s.email
    # What their deliveries and issue events added to each issue's figures stays there.
    deliveries = session.execute(
        delete(Delivery)
        .where(_deliveries(s))
        .returning(Delivery.issue_id, Delivery.status)
        .execution_options(synchronize_session=False)
    ).all()
    add_totals(
        session,
        TotalRecord.DELIVERY,
        Counter((int(i), str(status)) for i, status in deliveries).items(),
    )
    events = session.execute(
        delete(Event)
        .where(Event.subscriber_id == s.id)
        .returning(Event.issue_id, Event.kind)
        .execution_options(synchronize_session=False)
    ).all()
    add_totals(
        session,
        TotalRecord.EVENT,
        Counter((int(i), str(kind)) for i, kind in events if i is not None).items(),
    )
    delivery_events = _gone(
        session.execute(
            delete(DeliveryEvent)
            .where(_delivery_events(s))
            .execution_options(synchronize_session=False)
        )
    )
    signups = _gone(
        session.execute(
            delete(SignupRequest)
            .where(SignupRequest.email == address)
            .execution_options(synchronize_session=False)
        )
    )
    subscriptions = _gone(
        session.execute(
            delete(Subscription)
            .where(Subscription.subscriber_id == s.id)
            .execution_options(synchronize_session=False)
        )
    )
    unsuppress(session, address)  # their clear entry; the hashed one follows
    session.delete(s)
    session.flush()
    suppress(session, erased_key(address), SuppressionReason.MANUAL, ERASED_DETAIL)
    session.expire_all()
    return Erased(subscriptions, len(events), len(deliveries), delivery_events, signups)

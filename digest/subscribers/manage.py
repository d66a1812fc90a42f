"""What an admin does to one subscriber: add by hand, edit, unsubscribe from a list or all.

One function per action, called alike by the admin's pages, the JSON API and the CLI. The
rules are those of the subscriber's own actions (`digest.subscribers.actions`) and of the
import (`digest.subscribers.service`): a new subscription is confirmed only when the admin
says its consent was recorded, otherwise it is pending and a confirmation mail is queued;
an admin never brings back someone who left, bounced or complained (only the person can,
through a confirmation mail). The caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import DigestError, NotFound
from digest.models import (
    RECEIVING,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from digest.subscribers import actions
from digest.subscribers.addresses import display_email, normalise_email
from digest.subscribers.service import add_subscriber
from digest.subscribers.topics import clean_language, clean_timezone

VIA = "admin"
MAX_LISTS = 100


def get_subscriber(session: Session, subscriber_id: int) -> Subscriber:
    found = session.get(Subscriber, subscriber_id)
    if found is None:
        raise NotFound("no such subscriber")
    return found


def find_by_address(session: Session, email: str) -> Subscriber:
    """The subscriber with this address (checked and normalised as a sign-up's is)."""
    address = normalise_email(email)
    found = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if found is None:
        raise NotFound(f"no subscriber has the address {display_email(address)}")
    return found


def _subscription(session: Session, subscriber_id: int, list_id: int) -> Subscription:
    found = session.scalar(
        select(Subscription).where(
            Subscription.subscriber_id == subscriber_id, Subscription.list_id == list_id
        )
    )
    if found is None:
        raise NotFound(f"the subscriber is not on list {list_id}")
    return found


@dataclass(frozen=True, slots=True)
class Added:
    subscriber_id: int
    email: str
    statuses: dict[int, SubscriptionStatus]  # list id -> the subscription's status now


def add_by_hand(
    session: Session,
    email: str,
    list_ids: Sequence[int],
    *,
    name: str = "",
    consent_recorded: bool,
) -> Added:
    """Subscribe an address to one or more lists. The address is checked as a sign-up's is;
    an unknown list is a NotFound and nothing is added."""
    wanted = sorted(set(list_ids))
    if not wanted:
        raise DigestError("choose at least one list")
    if len(wanted) > MAX_LISTS:
        raise DigestError(f"at most {MAX_LISTS} lists at once")
    known = set(session.scalars(select(MailingList.id).where(MailingList.id.in_(wanted))))
    if missing := [i for i in wanted if i not in known]:
        raise NotFound(f"no such list: {missing[0]}")
    status = SubscriptionStatus.CONFIRMED if consent_recorded else SubscriptionStatus.PENDING
    statuses: dict[int, SubscriptionStatus] = {}
    subscriber_id = 0
    address = ""
    for list_id in wanted:
        sub = add_subscriber(
            session, list_id, email, name, status, confirm_by_mail=not consent_recorded
        )
        statuses[list_id] = sub.status
        subscriber_id, address = sub.subscriber_id, sub.subscriber.email
    return Added(subscriber_id, address, statuses)


def edit(
    session: Session,
    subscriber_id: int,
    *,
    name: str | None = None,
    language: str | None = None,
    timezone: str | None = None,
    topics: Mapping[int, Sequence[str]] | None = None,
    statuses: Mapping[int, SubscriptionStatus] | None = None,
) -> list[str]:
    """Change what the admin's form edits; what changed, as words ("name", "status:news" ...).

    The name, language and time zone are the subscriber's (saved through the preferences
    action of their first subscription, so the change is an event like the person's own);
    topics are per list (slugs or ids of the list's topics; empty: everything). A status may
    go from pending to confirmed (the admin vouches for the consent) or from receiving to
    unsubscribed; any other change is refused. Bad values raise DigestError, nothing saved.
    """
    subscriber = get_subscriber(session, subscriber_id)
    subs = {
        s.list_id: s
        for s in session.scalars(
            select(Subscription).where(Subscription.subscriber_id == subscriber_id)
        )
    }
    for list_id in {*(topics or {}), *(statuses or {})}:
        if list_id not in subs:
            raise NotFound(f"the subscriber is not on list {list_id}")
    for list_id, wanted in (statuses or {}).items():
        current = subs[list_id].status
        allowed = current == wanted or (
            (current == SubscriptionStatus.PENDING and wanted == SubscriptionStatus.CONFIRMED)
            or (current in RECEIVING and wanted == SubscriptionStatus.UNSUBSCRIBED)
        )
        if not allowed:
            raise DigestError(
                f"a subscription cannot go from {current} to {wanted} by an admin's hand: "
                "only the person can come back, through a confirmation mail"
            )
    changed: list[str] = []
    ordered = sorted(subs.values(), key=lambda s: s.id)
    topics_before = {s.list_id: s.topic_ids for s in ordered}
    if ordered:
        # The subscriber's own fields, through the first subscription (one event says what).
        first = ordered[0]
        before = (subscriber.name, subscriber.language, subscriber.timezone)
        actions.update_preferences(
            session,
            first.id,
            name=name,
            language=language,
            timezone=timezone,
            topics=(topics or {}).get(first.list_id),
        )
        after = (subscriber.name, subscriber.language, subscriber.timezone)
        words = ("name", "language", "timezone")
        changed += [w for w, b, a in zip(words, before, after, strict=True) if b != a]
    else:
        # Nobody's subscription to record it on: the fields themselves.
        if name is not None and (cleaned := actions.clean_name(name)) != subscriber.name:
            subscriber.name = cleaned
            changed.append("name")
        if language is not None and (lang := clean_language(language)) != subscriber.language:
            subscriber.language = lang
            changed.append("language")
        if timezone is not None and (zone := clean_timezone(timezone)) != subscriber.timezone:
            subscriber.timezone = zone
            changed.append("timezone")
    for sub in ordered[1:]:
        if (wanted_topics := (topics or {}).get(sub.list_id)) is not None:
            actions.update_preferences(session, sub.id, topics=wanted_topics)
    changed += [f"topics:{s.list_id}" for s in ordered if s.topic_ids != topics_before[s.list_id]]
    for list_id, wanted in (statuses or {}).items():
        sub = subs[list_id]
        if sub.status == wanted:
            continue
        if wanted == SubscriptionStatus.CONFIRMED:
            done = actions.confirm(session, sub.id)
        else:
            done = actions.unsubscribe(session, sub.id, via=VIA)
        if done:
            changed.append(f"status:{list_id}")
    session.flush()
    return changed


def unsubscribe(session: Session, subscriber_id: int, list_id: int | None = None) -> list[int]:
    """Stop mail from one list, or from every list (None); the lists that stopped. Each one
    is the subscriber's own unsubscribe action, recorded as an event "via admin"."""
    get_subscriber(session, subscriber_id)
    if list_id is not None:
        subs = [_subscription(session, subscriber_id, list_id)]
    else:
        subs = list(
            session.scalars(
                select(Subscription)
                .where(Subscription.subscriber_id == subscriber_id)
                .order_by(Subscription.id)
            )
        )
    return [s.list_id for s in subs if actions.unsubscribe(session, s.id, via=VIA)]

"""What is done about a delivery event: the policy that protects the list instead of emptying it.

One function (`record_event`) applies a verdict for the relay's answers at send time
(digest.delivery.ledger) and for messages that come back (`process_inbound`, which
`digest inbound` and `digest bounces import` call):
- hard: the address is suppressed and its subscriptions marked bounced, at once;
- soft: recorded; the address is suppressed once it has `soft_limit` in `soft_days`;
- block: recorded, never suppressed; when one destination domain returns `block_limit` in
  `block_minutes`, that domain's deliveries pause for `pause_minutes` and the operator is told
  (a warning in the log, the event's action, `digest bounces domains`);
- complaint (ARF abuse, JMRP): the reader unsubscribed and the address suppressed; opt-out:
  unsubscribed only; auth-failure, auto-replies, delays, our own errors: recorded only.
A returned message is acted on only when it names one of our deliveries (the marked VERP
return path or Message-ID, checked with the keys); anything else is recorded as unmatched
and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.installation import message_id_part
from digest.keys import LinkKeys, signing_keys
from digest.metrics import metrics
from digest.models import (
    RECEIVING,
    Delivery,
    DeliveryEvent,
    Event,
    EventKind,
    FeedbackAction,
    FeedbackVia,
    MailingList,
    PausedDomain,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
    Verdict,
    utcnow,
)
from digest.subscribers import actions
from digest.subscribers.reports import Mark, Report, read_report
from digest.subscribers.suppression import address_key, suppress
from digest.tokens import InvalidToken, check_mark, read_token

log = logging.getLogger(__name__)

DETAIL_MAX = 1000


@dataclass(frozen=True, slots=True)
class FeedbackPolicy:
    soft_limit: int = 3
    soft_days: int = 30
    block_limit: int = 10
    block_minutes: int = 60
    pause_minutes: int = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedbackPolicy:
        return cls(
            soft_limit=settings.soft_bounce_limit,
            soft_days=settings.soft_bounce_days,
            block_limit=settings.domain_block_limit,
            block_minutes=settings.domain_block_minutes,
            pause_minutes=settings.domain_pause_minutes,
        )


@dataclass(frozen=True, slots=True)
class DeliveryRef:
    """The delivery an event answers."""

    delivery_id: int
    issue_id: int
    subscriber_id: int
    subscription_id: int
    email: str


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


def _stop_subscriptions(
    session: Session, subscriber_id: int, status: SubscriptionStatus, now: datetime
) -> None:
    session.execute(
        update(Subscription)
        .where(Subscription.subscriber_id == subscriber_id, Subscription.status.in_(RECEIVING))
        .values(status=status, unsubscribed_at=now)
        .execution_options(synchronize_session=False)
    )


def _count(session: Session, since: datetime, verdict: Verdict, **match: str) -> int:
    query = select(func.count()).where(
        DeliveryEvent.verdict == verdict,
        DeliveryEvent.matched.is_(True),
        DeliveryEvent.created_at >= since,
    )
    for column, value in match.items():
        query = query.where(getattr(DeliveryEvent, column) == value)
    return int(session.scalar(query) or 0)


def pause_domain(
    session: Session, domain: str, until: datetime, reason: str, now: datetime | None = None
) -> bool:
    """Pause a destination domain's deliveries until `until`; False when it already was."""
    now = now or utcnow()
    current = session.get(PausedDomain, domain)
    if current is not None and current.paused_until > now:
        return False
    if current is None:
        session.add(PausedDomain(domain=domain, paused_until=until, reason=reason, created_at=now))
    else:
        current.paused_until, current.reason, current.created_at = until, reason, now
    session.flush()
    return True


def resume_domain(session: Session, domain: str) -> bool:
    """An operator's decision: the domain's deliveries go again; True when it was paused.
    Deliveries that wait for the pause to end keep their time: `digest issues resume` or the
    next batch after it picks them up."""
    result = session.execute(delete(PausedDomain).where(PausedDomain.domain == domain.lower()))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def paused_domains(session: Session, now: datetime | None = None) -> dict[str, PausedDomain]:
    """Domains paused now, by name."""
    now = now or utcnow()
    rows = session.scalars(select(PausedDomain).where(PausedDomain.paused_until > now))
    return {row.domain: row for row in rows}


def record_event(
    session: Session,
    verdict: Verdict,
    *,
    via: FeedbackVia,
    policy: FeedbackPolicy,
    delivery: DeliveryRef | None,
    email: str = "",
    status: str = "",
    detail: str = "",
    now: datetime | None = None,
) -> FeedbackAction:
    """Record what a recipient's system said and apply the policy; returns what was done.
    Without a delivery (unmatched) it is only recorded."""
    now = now or utcnow()
    address = address_key(delivery.email if delivery is not None else email)[:320]
    domain = domain_of(address)[:255]
    action = FeedbackAction.NONE
    if delivery is not None:
        action = _apply(session, verdict, delivery, policy, domain, status, detail, now)
    metrics().bounces.labels(str(verdict)).inc()
    session.add(
        DeliveryEvent(
            verdict=verdict,
            action=action,
            via=via,
            matched=delivery is not None,
            delivery_id=delivery.delivery_id if delivery else None,
            issue_id=delivery.issue_id if delivery else None,
            subscriber_id=delivery.subscriber_id if delivery else None,
            email=address,
            domain=domain,
            status=status[:16],
            detail=detail[:DETAIL_MAX],
            created_at=now,
        )
    )
    session.flush()
    return action


def _suppress(
    session: Session,
    delivery: DeliveryRef,
    reason: SuppressionReason,
    status: SubscriptionStatus,
    kind: EventKind,
    detail: str,
    now: datetime,
) -> None:
    suppress(session, delivery.email, reason, f"issue {delivery.issue_id}: {detail}")
    _stop_subscriptions(session, delivery.subscriber_id, status, now)
    session.add(
        Event(
            kind=kind,
            subscriber_id=delivery.subscriber_id,
            issue_id=delivery.issue_id,
            detail={"delivery_id": delivery.delivery_id, "detail": detail[:DETAIL_MAX]},
        )
    )


def _apply(
    session: Session,
    verdict: Verdict,
    delivery: DeliveryRef,
    policy: FeedbackPolicy,
    domain: str,
    status: str,
    detail: str,
    now: datetime,
) -> FeedbackAction:
    why = " ".join(x for x in (status, detail) if x)
    if verdict == Verdict.HARD:
        _suppress(
            session,
            delivery,
            SuppressionReason.BOUNCE,
            SubscriptionStatus.BOUNCED,
            EventKind.BOUNCED,
            why,
            now,
        )
        return FeedbackAction.SUPPRESSED
    if verdict == Verdict.SOFT:
        since = now - timedelta(days=policy.soft_days)
        earlier = _count(session, since, Verdict.SOFT, email=address_key(delivery.email))
        if earlier + 1 < policy.soft_limit:
            return FeedbackAction.NONE
        _suppress(
            session,
            delivery,
            SuppressionReason.BOUNCE,
            SubscriptionStatus.BOUNCED,
            EventKind.BOUNCED,
            f"{earlier + 1} soft bounces in {policy.soft_days} days; last: {why}",
            now,
        )
        return FeedbackAction.SUPPRESSED
    if verdict == Verdict.BLOCK:
        since = now - timedelta(minutes=policy.block_minutes)
        earlier = _count(session, since, Verdict.BLOCK, domain=domain)
        if earlier + 1 < policy.block_limit:
            return FeedbackAction.NONE
        until = now + timedelta(minutes=policy.pause_minutes)
        reason = f"{earlier + 1} blocks in {policy.block_minutes} min; last: {why}"[:DETAIL_MAX]
        if not pause_domain(session, domain, until, reason, now):
            return FeedbackAction.NONE
        log.warning(
            "destination domain %s paused until %s: it refuses our mail (%s); nobody was "
            "suppressed. `digest bounces domains` lists paused domains, "
            "`digest bounces resume-domain %s` lets it go again",
            domain,
            until.isoformat(timespec="minutes"),
            reason,
            domain,
        )
        return FeedbackAction.DOMAIN_PAUSED
    if verdict == Verdict.COMPLAINT:
        _suppress(
            session,
            delivery,
            SuppressionReason.COMPLAINT,
            SubscriptionStatus.COMPLAINED,
            EventKind.COMPLAINED,
            detail or "complaint",
            now,
        )
        return FeedbackAction.SUPPRESSED
    if verdict in (Verdict.OPT_OUT, Verdict.UNSUBSCRIBE):
        try:
            actions.unsubscribe(session, delivery.subscription_id, via=verdict.value)
        except actions.SubscriptionNotFound:
            return FeedbackAction.NONE
        return FeedbackAction.UNSUBSCRIBED
    return FeedbackAction.NONE


def find_delivery(
    session: Session, marks: list[Mark], keys: LinkKeys, installation: str
) -> DeliveryRef | None:
    """The first of our deliveries a message names by a valid mark: a VERP return path, or
    a Message-ID of this installation whose issue is the delivery's."""
    for mark in marks:
        if mark.installation is not None and mark.installation != installation:
            continue
        if not check_mark(mark.delivery_id, mark.mark, keys):
            continue
        row = session.get(Delivery, mark.delivery_id)
        if row is None or (mark.issue_id is not None and row.issue_id != mark.issue_id):
            continue
        return DeliveryRef(row.id, row.issue_id, row.subscriber_id, row.subscription_id, row.email)
    return None


@dataclass(frozen=True, slots=True)
class InboundResult:
    verdict: Verdict
    matched: bool
    actions: tuple[FeedbackAction, ...] = ()
    delivery_id: int | None = None

    @property
    def acted(self) -> bool:
        return any(a != FeedbackAction.NONE for a in self.actions)


@dataclass(frozen=True, slots=True)
class InboundContext:
    """What reading returned mail needs: the keys that check marks and tokens, this
    installation's Message-ID part, and the policy."""

    keys: LinkKeys
    installation: str
    policy: FeedbackPolicy


def inbound_context(session: Session, settings: Settings) -> InboundContext:
    return InboundContext(
        signing_keys(settings),
        message_id_part(session),
        FeedbackPolicy.from_settings(settings),
    )


def process_inbound(
    session: Session,
    raw: bytes,
    context: InboundContext,
    *,
    envelope_recipients: list[str] | tuple[str, ...] = (),
    now: datetime | None = None,
) -> InboundResult:
    """Apply one message that came back: a bounce, a complaint, a `mailto:` unsubscribe, an
    auto-reply ... Every message is recorded; only what names our delivery acts. The one
    way in: `digest inbound` (listener, Maildir, IMAP) and `digest bounces import` call it."""
    now = now or utcnow()
    keys, installation, policy = context.keys, context.installation, context.policy
    report = read_report(raw, envelope_recipients)
    if report.verdict == Verdict.UNSUBSCRIBE:
        return _mailto_unsubscribe(session, report, keys, policy, now)
    delivery = find_delivery(session, report.marks, keys, installation)

    def record(verdict: Verdict, email: str, status: str = "", detail: str = "") -> FeedbackAction:
        return record_event(
            session,
            verdict,
            via=FeedbackVia.INBOUND,
            policy=policy,
            delivery=delivery,
            email=email,
            status=status,
            detail=detail,
            now=now,
        )

    if report.failures and delivery is None:
        done = tuple(record(f.verdict, f.email, f.status, f.detail) for f in report.failures)
        return InboundResult(report.verdict, False, done)
    if report.failures and delivery is not None:
        # The failure for the address we sent to; else the first (a forward, an alias).
        key = address_key(delivery.email)
        failure = next((f for f in report.failures if f.email == key), report.failures[0])
        action = record(failure.verdict, failure.email, failure.status, failure.detail)
        return InboundResult(failure.verdict, True, (action,), delivery.delivery_id)
    action = record(
        report.verdict, report.reported[0] if report.reported else "", "", report.detail
    )
    delivery_id = delivery.delivery_id if delivery is not None else None
    return InboundResult(report.verdict, delivery is not None, (action,), delivery_id)


def _mailto_unsubscribe(
    session: Session, report: Report, keys: LinkKeys, policy: FeedbackPolicy, now: datetime
) -> InboundResult:
    """The `mailto:` of List-Unsubscribe: the Subject carries the signed token."""
    assert report.unsubscribe_token is not None
    try:
        subscription_id = read_token("unsubscribe", report.unsubscribe_token, keys)
    except InvalidToken:
        subscription_id = None
    subscription = session.get(Subscription, subscription_id) if subscription_id else None
    if subscription is None:
        record_event(
            session,
            Verdict.UNSUBSCRIBE,
            via=FeedbackVia.INBOUND,
            policy=policy,
            delivery=None,
            detail="mailto: unsubscribe with an invalid token",
            now=now,
        )
        return InboundResult(Verdict.UNSUBSCRIBE, False, (FeedbackAction.NONE,))
    changed = actions.unsubscribe(session, subscription.id, via="mailto")
    action = FeedbackAction.UNSUBSCRIBED if changed else FeedbackAction.NONE
    session.add(
        DeliveryEvent(
            verdict=Verdict.UNSUBSCRIBE,
            action=action,
            via=FeedbackVia.INBOUND,
            matched=True,
            subscriber_id=subscription.subscriber_id,
            email=address_key(subscription.subscriber.email),
            domain=domain_of(subscription.subscriber.email),
            detail=f"mailto: unsubscribe from list {subscription.list_id}",
            created_at=now,
        )
    )
    session.flush()
    return InboundResult(Verdict.UNSUBSCRIBE, True, (action,))


def list_events(
    session: Session,
    *,
    issue_id: int | None = None,
    email: str | None = None,
    unmatched: bool = False,
    limit: int = 100,
) -> list[DeliveryEvent]:
    """Delivery events, newest first: of an issue, of an address (a subscriber), or the
    unmatched ones."""
    query = select(DeliveryEvent).order_by(DeliveryEvent.id.desc()).limit(limit)
    if issue_id is not None:
        query = query.where(DeliveryEvent.issue_id == issue_id)
    if email is not None:
        query = query.where(DeliveryEvent.email == address_key(email))
    if unmatched:
        query = query.where(DeliveryEvent.matched.is_(False))
    return list(session.scalars(query))


def accepted_domains(session: Session, settings: Settings) -> set[str]:
    """The domains `digest inbound`'s listener takes mail for: the return path's, the
    unsubscribe mailbox's and every list's sender domain."""
    domains = {settings.return_path_domain or settings.sender_domain, settings.sender_domain}
    if settings.unsubscribe_mailbox:
        domains.add(domain_of(settings.unsubscribe_mailbox))
    for sender in session.scalars(select(MailingList.from_email)):
        if sender:
            domains.add(domain_of(sender))
    return {d.lower() for d in domains}

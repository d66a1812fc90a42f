"""Confirmation mails for sign-up requests, sent after the response that recorded them.

One runner for every path: a Celery task (ids from the request, or a periodic sweep) or the
web server's background task. It takes a sessionmaker and commits itself, like the send path:
the claim commits before anything is sent (a lease, so two runners never mail one request),
each request's decision commits on its own (an error fails that request only), and results
are written once the transport reports them.

Per request: a honeypot post is dropped; a suppressed address or an already confirmed
subscription gets no mail; an address over its throttle gets none; otherwise the
subscription is made pending if it is new (a stopped one, unsubscribed, bounced or
complained, stays as it is: only its owner's click on the new link confirms it) and the
confirmation goes out.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.db import is_postgres
from digest.delivery.audience import primary_language
from digest.delivery.message import data_ready
from digest.delivery.recipient import Recipient
from digest.delivery.transports import SendResult, Transport
from digest.keys import signing_keys
from digest.models import (
    Event,
    EventKind,
    OptIn,
    SignupOutcome,
    SignupRequest,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from digest.render.language import translations
from digest.subscribers.actions import confirm
from digest.subscribers.addresses import display_email, needs_smtputf8, wire_address
from digest.subscribers.suppression import is_suppressed
from digest.subscribers.throttle import Window, hashed, make_throttle, prune_counters
from digest.tokens import confirm_url, make_token

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
# Handled requests are kept this long: a stopped subscription's confirmation link works for
# as long as the request that mailed it is kept (actions.confirm).
KEEP = timedelta(days=30)
MAX_ATTEMPTS = 3
RETRY_AFTER = timedelta(minutes=2)  # doubled after each attempt
BATCH = 100
QUEUED = "queued"  # counted, never stored: the request waits for its confirmation's result


@dataclass(frozen=True, slots=True)
class _Confirmation:
    request_id: int
    subscription_id: int
    email: str
    list_name: str
    from_name: str
    from_email: str
    language: str  # the reader's (the sign-up page's), else the list's, else "en"


def send_confirmations(
    sf: sessionmaker[Session],
    transport: Transport,
    settings: Settings,
    ids: Sequence[int] | None = None,
) -> Counter[str]:
    """Handle the given sign-up requests, or (ids None) every open one that is due; returns
    how many ended how (sent, throttled, ... and 'retry' for those that wait a new try)."""
    with sf.begin() as session:
        claimed = _claim(session, ids, utcnow())
    totals: Counter[str] = Counter()
    planned: list[_Confirmation] = []
    for request_id in claimed:
        try:
            with sf.begin() as session:
                outcome, confirmation = _decide(session, request_id, settings)
        except Exception as exc:  # this request only: a race on a new subscriber, a bug
            log.exception("sign-up request %s: not handled", request_id)
            result = SendResult(request_id, "retry", f"{type(exc).__name__}: {exc}")
            with sf.begin() as session:
                totals.update(_record(session, [result], utcnow()))
            continue
        if confirmation is None:
            totals[outcome] += 1
        else:
            planned.append(confirmation)
    if planned:
        by_id = {c.request_id: c for c in planned}
        recipients = [Recipient(c.request_id, c.subscription_id, c.email) for c in planned]
        envelope = f"bounces@{settings.sender_domain}"

        def render(recipient: Recipient) -> bytes:
            return confirmation_bytes(by_id[recipient.delivery_id], settings)

        for chunk in transport.send(envelope, recipients, render):
            if chunk:
                with sf.begin() as session:
                    totals.update(_record(session, chunk, utcnow()))
    with sf.begin() as session:
        prune_counters(session)
        session.execute(
            delete(SignupRequest).where(
                SignupRequest.outcome.is_not(None), SignupRequest.created_at < utcnow() - KEEP
            )
        )
    return totals


def _claim(session: Session, ids: Sequence[int] | None, now: datetime) -> list[int]:
    due = and_(
        SignupRequest.outcome.is_(None),
        or_(SignupRequest.next_attempt_at.is_(None), SignupRequest.next_attempt_at <= now),
        or_(SignupRequest.lease_until.is_(None), SignupRequest.lease_until < now),
    )
    pick = select(SignupRequest.id).where(due).order_by(SignupRequest.id).limit(BATCH)
    if ids is not None:
        pick = pick.where(SignupRequest.id.in_(list(ids)))
    if is_postgres(session):
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(SignupRequest)
        .where(SignupRequest.id.in_(pick.scalar_subquery()), due)
        .values(lease_until=now + LEASE, attempts=SignupRequest.attempts + 1)
        .returning(SignupRequest.id)
    )
    return sorted(session.scalars(stmt))


def _finish(request: SignupRequest, outcome: SignupOutcome) -> None:
    request.outcome, request.lease_until = outcome, None


def _decide(
    session: Session, request_id: int, settings: Settings
) -> tuple[str, _Confirmation | None]:
    """What this request gets: 'queued' and the confirmation to send, or why there is none
    (the request's outcome, set here)."""
    request = session.get(SignupRequest, request_id)
    if request is None:
        return "gone", None
    if request.bot:
        _finish(request, SignupOutcome.BOT)
        return SignupOutcome.BOT, None
    lst = request.mailing_list
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == request.email))
    subscription = None
    if subscriber is not None:
        subscription = session.scalar(
            select(Subscription).where(
                Subscription.list_id == lst.id, Subscription.subscriber_id == subscriber.id
            )
        )
    outcome: SignupOutcome | None = None  # None: queued, a confirmation is to be sent
    if is_suppressed(session, request.email):
        outcome = SignupOutcome.SUPPRESSED
    elif subscription is not None and subscription.status == SubscriptionStatus.CONFIRMED:
        outcome = SignupOutcome.SUBSCRIBED
    # A retry was counted on its first try.
    elif request.subscription_id is None and not _within_limits(session, request, settings):
        outcome = SignupOutcome.THROTTLED
    if outcome is None:
        if subscriber is None:
            subscriber = Subscriber(
                email=request.email,
                name=request.name,
                language=request.language,
                timezone=request.timezone,
            )
            session.add(subscriber)
            session.flush()
        if subscription is None:
            subscription = Subscription(
                list_id=lst.id, subscriber_id=subscriber.id, status=SubscriptionStatus.PENDING
            )
            session.add(subscription)
            session.flush()
        request.subscription_id = subscription.id
        # Single opt-in: a new or pending subscription is confirmed at once, with no mail. A
        # stopped one is not (a stranger could bring it back): its owner gets the link.
        if lst.opt_in == OptIn.SINGLE and confirm(session, subscription.id):
            outcome = SignupOutcome.SUBSCRIBED
            _finish(request, outcome)
    else:
        _finish(request, outcome)
    if request.attempts <= 1:  # one event per request, not per try
        session.add(
            Event(
                kind=EventKind.SIGNUP,
                subscriber_id=subscriber.id if subscriber else None,
                list_id=lst.id,
                detail={"request_id": request.id, "outcome": outcome or QUEUED},
            )
        )
    if subscription is None or outcome is not None:
        return outcome or QUEUED, None
    return QUEUED, _Confirmation(
        request.id,
        subscription.id,
        request.email,
        lst.name,
        lst.from_name or settings.from_name,
        lst.from_email or settings.from_email,
        primary_language(request.language) or primary_language(lst.language) or "en",
    )


def _within_limits(session: Session, request: SignupRequest, settings: Settings) -> bool:
    throttle = make_throttle(settings, session)
    per_list = hashed("signup-address", f"{request.list_id}:{request.email}")
    per_day = hashed("signup-address", request.email)
    # Both are counted, whatever the first says, so the day's count stays true.
    recent = throttle.hit(per_list, [Window(60 * settings.signup_address_minutes, 1)])
    today = throttle.hit(per_day, [Window(86400, settings.signup_address_per_day)])
    return recent and today


def _record(session: Session, results: Sequence[SendResult], now: datetime) -> Counter[str]:
    """Write what the transport said; a transient failure waits for another try, a bounded
    number of times."""
    counts: Counter[str] = Counter()
    for result in results:
        request = session.get(SignupRequest, result.delivery_id)
        if request is None or request.outcome is not None:
            continue
        request.detail = result.detail[:1000]
        request.lease_until = None
        if result.outcome == "sent":
            request.outcome, request.sent_at = SignupOutcome.SENT, now
        elif result.outcome in ("retry", "deferred") and request.attempts < MAX_ATTEMPTS:
            request.next_attempt_at = now + RETRY_AFTER * 2 ** (request.attempts - 1)
            counts["retry"] += 1
            continue
        else:
            request.outcome = SignupOutcome.FAILED
            log.warning("confirmation for sign-up request %s failed: %s", request.id, result.detail)
        counts[request.outcome] += 1
    return counts


def confirmation_message(confirmation: _Confirmation, settings: Settings) -> EmailMessage:
    """A small plain message (one per sign-up: the stdlib is fast enough here)."""
    token = make_token("confirm", confirmation.subscription_id, signing_keys(settings))
    link = confirm_url(settings.public_url, token)
    domain = confirmation.from_email.rsplit("@", 1)[-1]
    msg = EmailMessage()
    msg["From"] = Address(display_name=confirmation.from_name, addr_spec=confirmation.from_email)
    msg["To"] = wire_address(confirmation.email)
    # In the reader's language: the email catalogue's words (English when it has none).
    _ = translations(confirmation.language).gettext
    words = {"list": confirmation.list_name, "email": display_email(confirmation.email)}
    msg["Subject"] = _("Confirm your subscription to {list}").format(**words)
    msg["Date"] = formatdate(localtime=False)
    # Stable per request: a copy sent twice (a lease that ran out) is recognisable.
    msg["Message-ID"] = f"<c{confirmation.request_id}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        _("Someone, probably you, asked to receive {list} at {email}.").format(**words)
        + f"\n\n{_('Confirm here:')}\n{link}\n\n"
        + _("If it was not you, ignore this message: nothing will be sent.")
        + "\n"
    )
    return msg


def confirmation_bytes(confirmation: _Confirmation, settings: Settings) -> bytes:
    message = confirmation_message(confirmation, settings)
    return data_ready(message, utf8=needs_smtputf8(confirmation.email))

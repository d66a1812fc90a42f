"""Public sign-up with double opt-in: a pending subscription and a confirmation message.

The answer to the person is the same whatever the address's state, so the form never tells a
stranger who is subscribed.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import Settings, get_settings
from digest.delivery.message import data_ready
from digest.delivery.recipient import Recipient
from digest.delivery.transports import SendResult, Transport
from digest.models import Event, MailingList, Subscriber, Subscription, utcnow
from digest.subscribers.actions import clean_name
from digest.subscribers.service import normalise_email
from digest.subscribers.suppression import is_suppressed
from digest.subscribers.tokens import Signer


@dataclass(frozen=True, slots=True)
class SignUp:
    subscription_id: int
    email: str
    send_confirmation: bool  # False: already confirmed, or the address is suppressed


def sign_up(session: Session, lst: MailingList, email: str, name: str = "") -> SignUp:
    address = normalise_email(email)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        subscriber = Subscriber(email=address, name=clean_name(name))
        session.add(subscriber)
        session.flush()
    subscription = session.scalar(
        select(Subscription).where(
            Subscription.list_id == lst.id, Subscription.subscriber_id == subscriber.id
        )
    )
    if subscription is None:
        subscription = Subscription(list_id=lst.id, subscriber_id=subscriber.id, status="pending")
        session.add(subscription)
        session.flush()
    elif subscription.status in ("unsubscribed", "pending"):
        # Signing up again is a fresh request to opt in: it waits for the new confirmation.
        subscription.status = "pending"
    send = subscription.status == "pending" and not is_suppressed(session, address)
    session.add(
        Event(
            kind="signup",
            subscriber_id=subscriber.id,
            list_id=lst.id,
            detail={"confirmation_sent": send, "at": utcnow().isoformat()},
        )
    )
    session.flush()
    return SignUp(subscription.id, address, send)


def confirmation_message(
    lst: MailingList, signup: SignUp, settings: Settings | None = None
) -> EmailMessage:
    """A small plain message (one per sign-up: the stdlib is fast enough here)."""
    s = settings or get_settings()
    token = Signer(s.secret_key).token("confirm", signup.subscription_id)
    link = f"{s.public_url.rstrip('/')}/c/{token}"
    from_email = lst.from_email or s.from_email
    msg = EmailMessage()
    msg["From"] = Address(display_name=lst.from_name or s.from_name, addr_spec=from_email)
    msg["To"] = signup.email
    msg["Subject"] = f"Confirm your subscription to {lst.name}"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=from_email.rsplit("@", 1)[-1])
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        f"Someone, probably you, asked to receive {lst.name} at {signup.email}.\n\n"
        f"Confirm here:\n{link}\n\n"
        "If it was not you, ignore this message: nothing will be sent.\n"
    )
    return msg


def send_confirmation(
    lst: MailingList, signup: SignUp, transport: Transport, settings: Settings | None = None
) -> SendResult | None:
    """Send the confirmation message; its result (None: the transport reported none)."""
    s = settings or get_settings()
    data = data_ready(confirmation_message(lst, signup, s))
    recipient = Recipient(0, signup.subscription_id, signup.email, "")
    chunks = transport.send(f"bounces@{s.sender_domain}", [recipient], lambda _r: data)
    results = [result for chunk in chunks for result in chunk]  # to the end: the batch closes
    return results[0] if results else None

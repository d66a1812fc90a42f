"""Bounces and complaints that come back by mail: suppress the address, record the event.

Delivery status notifications are read with flufl.bounce (it knows the formats MTAs really
send); spam complaints arrive as ARF feedback reports (RFC 5965). The copy we sent is found by
its Message-ID, `<d{delivery}.i{issue}@domain>`, when the report quotes it.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message

from flufl.bounce import all_failures
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digest.metrics import metrics
from digest.models import (
    RECEIVING,
    Event,
    EventKind,
    Issue,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
    utcnow,
)
from digest.subscribers.suppression import address_key, suppress

OUR_MESSAGE_ID = re.compile(rb"<d(\d+)\.i(\d+)@[^>\s]+>")


@dataclass
class BounceResult:
    kind: str = "none"  # bounce | complaint | none
    permanent: list[str] = field(default_factory=list)
    temporary: list[str] = field(default_factory=list)
    issue_id: int | None = None
    delivery_id: int | None = None


def _is_feedback_report(msg: Message) -> bool:
    return (
        msg.get_content_type() == "multipart/report"
        and str(msg.get_param("report-type") or "").lower() == "feedback-report"
    )


def _complaint_recipients(msg: Message) -> list[str]:
    found: list[str] = []
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            blocks = payload if isinstance(payload, list) else [part]
            for block in blocks:
                text = block.as_string() if isinstance(block, Message) else str(block)
                found += re.findall(r"(?im)^Original-Rcpt-To:\s*(\S+@\S+)\s*$", text)
        elif part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(headers, Message) and headers.get("To"):
                found += [a for _, a in email.utils.getaddresses([str(headers["To"])]) if a]
    return sorted({address_key(a.strip("<>")) for a in found})


def _addresses(found: frozenset[bytes]) -> list[str]:
    return sorted({address_key(a.decode("utf-8", "replace")) for a in found})


def read_report(raw: bytes) -> BounceResult:
    """What a returned message says, without touching the store."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    result = BounceResult()
    quoted = OUR_MESSAGE_ID.search(raw)
    if quoted:
        result.delivery_id, result.issue_id = int(quoted.group(1)), int(quoted.group(2))
    if _is_feedback_report(msg):
        result.kind = "complaint"
        result.permanent = _complaint_recipients(msg)
        return result
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector that chokes on a malformed report
        return result
    result.permanent, result.temporary = _addresses(permanent), _addresses(temporary)
    if result.permanent or result.temporary:
        result.kind = "bounce"
    return result


def process_report(session: Session, raw: bytes) -> BounceResult:
    """Apply a returned message: hard bounces and complaints suppress the address everywhere."""
    result = read_report(raw)
    if result.issue_id is not None and session.get(Issue, result.issue_id) is None:
        result.issue_id = result.delivery_id = None  # quoted from elsewhere, or forged
    # Only a bounce or a complaint has permanent failures; its kind is the suppression reason.
    complaint = result.kind == "complaint"
    status = SubscriptionStatus.COMPLAINED if complaint else SubscriptionStatus.BOUNCED
    reason = SuppressionReason.COMPLAINT if complaint else SuppressionReason.BOUNCE
    now = utcnow()
    counted = metrics().bounces
    counted.labels("complaint" if complaint else "hard").inc(len(result.permanent))
    counted.labels("soft").inc(len(result.temporary))
    detail = f"issue {result.issue_id}" if result.issue_id else ""
    for address in result.permanent:
        suppress(session, address, reason, detail)
        subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email == address))
        if subscriber_id is None:
            continue
        session.execute(
            update(Subscription)
            .where(
                Subscription.subscriber_id == subscriber_id,
                Subscription.status.in_(RECEIVING),
            )
            .values(status=status, unsubscribed_at=now)
        )
        session.add(
            Event(
                kind=EventKind.COMPLAINED if complaint else EventKind.BOUNCED,
                subscriber_id=subscriber_id,
                issue_id=result.issue_id,
                detail={"delivery_id": result.delivery_id, "permanent": True},
            )
        )
    for address in result.temporary:
        subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email == address))
        session.add(
            Event(
                kind=EventKind.SOFT_BOUNCE,
                subscriber_id=subscriber_id,
                issue_id=result.issue_id,
                detail={"delivery_id": result.delivery_id, "email": address},
            )
        )
    session.flush()
    return result

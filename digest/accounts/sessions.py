"""Server-side sign-in sessions. The browser's cookie holds a random token; the store holds
its SHA-256, so a copy of the database signs nobody in. Each session has its own random CSRF
token, made when it starts and never derived from anything else."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from digest.models import User, WebSession, utcnow

TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128
# last_seen_at is written at most this often: not one UPDATE per page view.
TOUCH_EVERY = timedelta(minutes=5)


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Started:
    token: str  # for the cookie; never stored
    session: WebSession


def start_session(session: Session, user: User, *, address: str, hours: float) -> Started:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    row = WebSession(
        token_hash=digest_of(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
        address=address[:64],
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=hours),
    )
    session.add(row)
    # Expired sessions of anyone go when someone signs in: the table stays small.
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    session.flush()
    return Started(token, row)


def find_session(session: Session, token: str | None) -> WebSession | None:
    """The live session of an enabled user this token opens, else None."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    row = session.scalar(
        select(WebSession).join(User).where(WebSession.token_hash == digest_of(token))
    )
    now = utcnow()
    if row is None or row.expires_at <= now or row.user.disabled:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return row


def end_session(session: Session, token: str | None) -> None:
    if token and len(token) <= MAX_TOKEN_LENGTH:
        session.execute(delete(WebSession).where(WebSession.token_hash == digest_of(token)))

"""Per-user tokens for the JSON API: shown once when made, kept as their SHA-256. A token
acts with its user's role, and stops when revoked or when its user is disabled."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import NotFound
from digest.models import ApiToken, User, utcnow

PREFIX = "dgt_"
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Issued:
    token: str  # shown once
    row: ApiToken


def issue_token(session: Session, user: User, name: str = "") -> Issued:
    token = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = ApiToken(
        user_id=user.id, name=name.strip()[:200], token_hash=_digest(token), prefix=token[:12]
    )
    session.add(row)
    session.flush()
    return Issued(token, row)


def user_tokens(session: Session, user_id: int) -> Sequence[ApiToken]:
    return session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    ).all()


def find_token(session: Session, token: str | None) -> ApiToken | None:
    """The live token of an enabled user, else None."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.startswith(PREFIX):
        return None
    row = session.scalar(select(ApiToken).join(User).where(ApiToken.token_hash == _digest(token)))
    if row is None or row.revoked_at is not None or row.user.disabled:
        return None
    row.last_used_at = utcnow()
    return row


def revoke_token(session: Session, user_id: int, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user_id:
        raise NotFound("no such token")
    row.revoked_at = row.revoked_at or utcnow()
    return row

"""Users: add, list, disable, set a password or a role, and check a sign-in.

A disabled user keeps their row (the audit log names them) but cannot sign in, and their
sessions and API tokens stop working at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from digest.accounts import passwords
from digest.errors import DigestError, NotFound
from digest.models import ApiToken, Role, User, WebSession, utcnow
from digest.subscribers.addresses import normalise_email


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(User)) or 0)


def get_user(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == _email(email)))
    if user is None:
        raise NotFound(f"no user {email.strip()[:320]!r}")
    return user


def _email(raw: str) -> str:
    return normalise_email(raw)


def add_user(
    session: Session, email: str, password: str, *, role: Role = Role.VIEWER, name: str = ""
) -> User:
    address = _email(email)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise DigestError(f"a user {address} already exists")
    user = User(
        email=address,
        name=name.strip()[:200],
        role=Role(role),
        password_hash=passwords.hash_password(password),
    )
    session.add(user)
    session.flush()
    return user


def add_first_admin(session: Session, email: str, password: str, *, name: str = "") -> User:
    """The first user of a fresh install, an admin; refused once any user exists. The lock
    makes two first-run forms sent at once create one admin."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(0x64696765_7374)))  # "digest"
    if count_users(session):
        raise DigestError("this install already has users: sign in instead")
    user = add_user(session, email, password, role=Role.ADMIN, name=name)
    user.last_signin_at = utcnow()  # signed in by creating it
    return user


def list_users(session: Session) -> Sequence[User]:
    return session.scalars(select(User).order_by(User.email)).all()


def _end_access(session: Session, user_id: int) -> None:
    session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def _last_admin(session: Session, user: User) -> bool:
    others = select(func.count()).where(
        User.role == Role.ADMIN, User.disabled.is_(False), User.id != user.id
    )
    return user.role == Role.ADMIN and not user.disabled and not session.scalar(others)


def disable_user(session: Session, email: str) -> User:
    """Disable a user: signed out everywhere, API tokens revoked. The last admin stays."""
    user = get_user(session, email)
    if _last_admin(session, user):
        raise DigestError("this is the last admin: make another admin first")
    user.disabled = True
    _end_access(session, user.id)
    return user


def enable_user(session: Session, email: str) -> User:
    user = get_user(session, email)
    user.disabled = False
    return user


def set_password(session: Session, email: str, password: str) -> User:
    """A new password; every session of the user ends (their API tokens stay)."""
    user = get_user(session, email)
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = utcnow()
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    return user


def set_role(session: Session, email: str, role: Role) -> User:
    user = get_user(session, email)
    if Role(role) != Role.ADMIN and _last_admin(session, user):
        raise DigestError("this is the last admin: make another admin first")
    user.role = Role(role)
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The enabled user with this address and password, else None (in the same time)."""
    try:
        address = _email(email)
    except DigestError:
        address = ""
    user = session.scalar(select(User).where(User.email == address)) if address else None
    ok = passwords.verify(user.password_hash if user else None, password)
    if user is None or not ok or user.disabled:
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user.last_signin_at = utcnow()
    return user

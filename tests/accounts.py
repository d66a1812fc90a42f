"""Users for the tests: one per role, each with a known password and a known API token, and
a way to sign a test client in through the real sign-in form."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.accounts import passwords
from digest.db import session_factory
from digest.models import ApiToken, Role, User

PASSWORD = "correct horse battery staple"
ADMIN = "admin@example.org"


def email_of(role: Role) -> str:
    return f"{Role(role).value}@example.org"


def token_of(role: Role) -> str:
    return f"dgt_test-{Role(role).value}-token-0123456789abcdef"


@cache
def _hash(password: str) -> str:  # argon2 is slow on purpose: once per process is enough
    return passwords.hash_password(password)


def grant(
    where: str | Session,
    role: Role = Role.ADMIN,
    *,
    email: str | None = None,
    password: str = PASSWORD,
) -> int:
    """A user of this role (and its API token, `token_of(role)`); returns the user's id."""
    session = session_factory(where)() if isinstance(where, str) else where
    try:
        address = email or email_of(role)
        user = session.scalar(select(User).where(User.email == address))
        if user is None:
            user = User(email=address, name=f"{Role(role).value.title()} User", role=role)
            user.password_hash = _hash(password)
            session.add(user)
            session.flush()
            digest = hashlib.sha256(token_of(role).encode()).hexdigest()
            if email is None:
                session.add(ApiToken(user_id=user.id, token_hash=digest, prefix="dgt_test"))
        session.commit()
        return user.id
    finally:
        if isinstance(where, str):
            session.close()


def grant_all(where: str | Session) -> None:
    for role in Role:
        grant(where, role)


def bearer(role: Role = Role.ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(role)}"}


def sign_in(client: Any, email: str = ADMIN, password: str = PASSWORD, **kwargs: Any) -> Any:
    """Sign a TestClient in through the sign-in form; returns the response to the post."""
    page = client.get("/editor/signin", **kwargs)
    assert page.status_code == 200, page.text[:300]
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "the sign-in form has no CSRF field"
    data = {"csrf": match.group(1), "email": email, "password": password}
    return client.post("/editor/signin", data=data, follow_redirects=False, **kwargs)


def signed_in(client: Any, role: Role = Role.ADMIN, **kwargs: Any) -> Any:
    response = sign_in(client, email_of(role), **kwargs)
    assert response.status_code == 303, response.text[:300]
    return client

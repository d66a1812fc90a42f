"""Password hashing: argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from digest.errors import DigestError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # hashing a megabyte on every guess would be a denial of service

_hasher = PasswordHasher()


@cache
def _dummy() -> str:
    """Verified when no user has the name, so that a missing user takes as long as a wrong
    password. Made on first use: a hash costs half a second of CPU, and every `digest`
    process (each command, each worker) would otherwise pay it at import."""
    return _hasher.hash("no such user: this hash is compared so timing says nothing")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise DigestError(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise DigestError(f"the password must have at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """True when `password` is the one hashed; with no hash, spends the same time and says
    False."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash or _dummy(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)

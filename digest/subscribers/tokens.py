"""Signed tokens for the links in a message: a salt per purpose, no address inside.

A token carries a row id only; forging or editing one fails signature checks, and a token
made for one purpose (say, view-online) is refused for another (unsubscribe).

Keys come from `digest.keys`: the newest signs, every configured one verifies (so links in mail
sent before a key rotation keep working), and outside development mode a missing or published
key raises `InsecureKey` instead of signing or accepting anything.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal, get_args

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous import Signer as HmacSigner
from itsdangerous.encoding import base64_encode, want_bytes

from digest.config import get_settings
from digest.db import MAX_BIGINT
from digest.keys import checked, signing_keys

Purpose = Literal["unsubscribe", "preferences", "confirm", "view"]
# One key, or several oldest first (the last signs); None: the configured keys.
Secret = str | Sequence[str] | None


class InvalidToken(ValueError):
    """The token is malformed, forged, or made for another purpose."""


@lru_cache(maxsize=64)
def _derived_key(secret: bytes, salt: bytes, key_derivation: str, digest_method: Any) -> bytes:
    signer = HmacSigner(
        secret, salt=salt, key_derivation=key_derivation, digest_method=digest_method
    )
    return signer.derive_key()


class _KeyCachingSigner(HmacSigner):
    """itsdangerous derives the HMAC key again for every token; a send makes two per copy, so
    the key is derived once per (secret, salt). The tokens are byte-for-byte the same."""

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        return _derived_key(secret, want_bytes(self.salt), self.key_derivation, self.digest_method)


def keys_for(secret: Secret) -> tuple[str, ...]:
    """The keys to sign (the last) and verify with; InsecureKey outside development mode when
    one is missing or published, whether configured or passed in."""
    settings = get_settings()
    if secret is None:
        return signing_keys(settings)
    return checked((secret,) if isinstance(secret, str) else secret, dev_mode=settings.dev_mode)


def _serializer(purpose: Purpose, secret: Secret = None) -> URLSafeSerializer:
    return URLSafeSerializer(
        list(keys_for(secret)), salt=f"digest.{purpose}", signer=_KeyCachingSigner
    )


def make_token(purpose: Purpose, row_id: int, secret: Secret = None) -> str:
    return _serializer(purpose, secret).dumps(row_id)


def read_token(purpose: Purpose, token: str, secret: Secret = None) -> int:
    try:
        value = _serializer(purpose, secret).loads(token)
    except BadSignature as exc:
        raise InvalidToken(f"invalid {purpose} link") from exc
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_BIGINT:
        raise InvalidToken(f"invalid {purpose} link")
    return value


class Signer:
    """Makes many tokens fast, for the send path: the same bytes as `make_token` (a test pins
    that), with the HMAC keyed once per purpose and copied per token instead of re-derived."""

    def __init__(self, secret: Secret = None) -> None:
        # Resolved (and checked) once: every token of this signer uses the same newest key.
        self._secret = keys_for(secret)
        self._by_purpose: dict[str, hmac.HMAC] = {}
        for purpose in get_args(Purpose):
            signer = _serializer(purpose, self._secret).make_signer()
            self._by_purpose[purpose] = hmac.new(
                signer.derive_key(), digestmod=signer.digest_method
            )

    def token(self, purpose: Purpose, row_id: int) -> str:
        # URLSafeSerializer's format: base64url(json(id)) "." base64url(hmac(payload)). It
        # zlib-compresses payloads when that is shorter, which never happens below 9 digits
        # (zlib's output has 8 bytes of overhead); longer ids take the library's path.
        digits = str(int(row_id)).encode()
        if len(digits) > 9:
            return make_token(purpose, row_id, self._secret)
        payload = base64_encode(digits)
        mac = self._by_purpose[purpose].copy()
        mac.update(payload)
        return (payload + b"." + base64_encode(mac.digest())).decode()


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/u/{token}"


def preferences_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/p/{token}"


def view_online_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/v/{token}"

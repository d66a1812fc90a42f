"""Signed links: the tokens in every message's links and the URLs built from them.

Cross-cutting on purpose: delivery signs them into each copy, sign-up confirmations sign one,
the web pages read them. A token carries a row id only, with a salt per purpose; forging or
editing one fails the signature check, and a token made for one purpose (say, view-online)
is refused for another (unsubscribe).

The keys are the caller's (`digest.keys.signing_keys(settings)`, which refuses a missing or
published key outside development mode): the newest signs, every one verifies, so links in
mail sent before a key rotation keep working. Nothing here reads the global settings, so a
web app, worker or command signs with the settings it holds.
"""

from __future__ import annotations

import hashlib
import hmac
from binascii import b2a_base64
from functools import lru_cache
from typing import Any, Literal, Protocol, get_args

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous import Signer as HmacSigner
from itsdangerous.encoding import want_bytes

from digest.db import MAX_BIGINT
from digest.keys import LinkKeys

# "view" names an issue, "variant" one of its variants (IssueVariant): both open /v/.
Purpose = Literal["unsubscribe", "preferences", "confirm", "view", "variant"]
# The path each purpose's link takes on the public site (`digest serve`).
PATHS: dict[Purpose, str] = {
    "unsubscribe": "u",
    "preferences": "p",
    "confirm": "c",
    "view": "v",
    "variant": "v",
}


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


def _serializer(purpose: Purpose, keys: LinkKeys) -> URLSafeSerializer:
    return URLSafeSerializer(list(keys), salt=f"digest.{purpose}", signer=_KeyCachingSigner)


def make_token(purpose: Purpose, row_id: int, keys: LinkKeys) -> str:
    return _serializer(purpose, keys).dumps(row_id)


def read_token(purpose: Purpose, token: str, keys: LinkKeys) -> int:
    try:
        value = _serializer(purpose, keys).loads(token)
    except BadSignature as exc:
        raise InvalidToken(f"invalid {purpose} link") from exc
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_BIGINT:
        raise InvalidToken(f"invalid {purpose} link")
    return value


class _Mac(Protocol):
    def copy(self) -> _Mac: ...
    def update(self, msg: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


def _fast(mac: hmac.HMAC) -> _Mac:
    """The OpenSSL HMAC object inside `mac` where there is one: the same copy, update and
    digest, without hmac.HMAC's Python wrapper around each (a tenth of a copy's token cost)."""
    inner: _Mac | None = getattr(mac, "_hmac", None)
    return inner if inner is not None and hasattr(inner, "copy") else mac


class Signer:
    """Makes many tokens fast, for the send path: the same bytes as `make_token` (a test pins
    that), with the HMAC keyed once per purpose and copied per token instead of re-derived."""

    def __init__(self, keys: LinkKeys) -> None:
        # Every token of this signer uses the same newest key.
        self._keys = keys
        self._by_purpose: dict[str, _Mac] = {}
        for purpose in get_args(Purpose):
            signer = _serializer(purpose, keys).make_signer()
            # By name ("sha1"), not itsdangerous' lazy constructor: a function hmac does not
            # know makes it fall back to HMAC in Python (two hash objects copied per token).
            digest_name = signer.digest_method().name
            self._by_purpose[purpose] = _fast(hmac.new(signer.derive_key(), digestmod=digest_name))
        self._mark = _fast(_mark_hmac(keys[-1]))
        # Each copy's return path and Message-ID both carry its mark: the last one is kept
        # (one tuple, so a reader in another thread sees a matching pair or none).
        self._last_mark: tuple[int, str] = (0, "")

    def mark(self, delivery_id: int) -> str:
        """The delivery's mark in its return path and Message-ID (see `delivery_mark`)."""
        last_id, last = self._last_mark
        if delivery_id == last_id and last:
            return last
        mac = self._mark.copy()
        mac.update(str(int(delivery_id)).encode())
        mark = _mark_text(mac.digest())
        self._last_mark = (delivery_id, mark)
        return mark

    def token(self, purpose: Purpose, row_id: int) -> str:
        return self.tokens(row_id, purpose)[0]

    def tokens(self, row_id: int, *purposes: Purpose) -> list[str]:
        """The tokens of one row for several purposes (a copy's unsubscribe and preferences
        links), sharing the payload's encoding."""
        # URLSafeSerializer's format: base64url(json(id)) "." base64url(hmac(payload)). It
        # zlib-compresses payloads when that is shorter, which never happens below 9 digits
        # (zlib's output has 8 bytes of overhead); longer ids take the library's path.
        digits = str(int(row_id)).encode()
        if len(digits) > 9:
            return [make_token(purpose, row_id, self._keys) for purpose in purposes]
        payload = _b64(digits)
        head = payload + b"."
        out = []
        for purpose in purposes:
            mac = self._by_purpose[purpose].copy()
            mac.update(payload)
            out.append((head + _b64(mac.digest())).decode())
        return out


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    """itsdangerous' base64_encode: URL-safe base64 without padding, here in two C calls."""
    return b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


MARK_LENGTH = 10  # base32 characters: 50 bits
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = [_B32[i >> 5] + _B32[i & 31] for i in range(1024)]  # 10 bits -> 2 characters


def _mark_hmac(key: str) -> hmac.HMAC:
    return hmac.new(
        hashlib.sha256(b"digest.delivery-mark\0" + key.encode()).digest(), None, "sha256"
    )


def _mark_text(digest: bytes) -> str:
    """The first 50 bits in lower-case base32: `base64.b32encode(digest)[:10].lower()`, which
    is Python code looping over the whole digest (a copy's two marks cost 7 us that way)."""
    bits = int.from_bytes(digest[:7], "big") >> 6
    pairs = _B32_PAIRS
    return (
        pairs[bits >> 40]
        + pairs[bits >> 30 & 1023]
        + pairs[bits >> 20 & 1023]
        + pairs[bits >> 10 & 1023]
        + pairs[bits & 1023]
    )


def delivery_mark(delivery_id: int, keys: LinkKeys) -> str:
    """An HMAC of a delivery id (newest key): what its VERP return path
    (`bounces+<delivery>-<mark>@domain`) and its Message-ID carry, so a returned message that
    names one of our deliveries is known to answer it and cannot be made up for another."""
    mac = _mark_hmac(keys[-1])
    mac.update(str(int(delivery_id)).encode())
    return _mark_text(mac.digest())


def check_mark(delivery_id: int, mark: str, keys: LinkKeys) -> bool:
    """True when `mark` is the delivery's under any of the keys (a rotation keeps working)."""
    for key in keys:
        mac = _mark_hmac(key)
        mac.update(str(int(delivery_id)).encode())
        if hmac.compare_digest(_mark_text(mac.digest()), mark.lower()):
            return True
    return False


def link_url(public_url: str, purpose: Purpose, token: str) -> str:
    """The public page a token leads to: /u/, /p/, /c/ or /v/ under `public_url`."""
    return f"{public_url.rstrip('/')}/{PATHS[purpose]}/{token}"


def unsubscribe_url(public_url: str, token: str) -> str:
    return link_url(public_url, "unsubscribe", token)


def preferences_url(public_url: str, token: str) -> str:
    return link_url(public_url, "preferences", token)


def view_online_url(public_url: str, token: str) -> str:
    return link_url(public_url, "view", token)


def confirm_url(public_url: str, token: str) -> str:
    return link_url(public_url, "confirm", token)

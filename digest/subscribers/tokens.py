"""Signed tokens for the links in a message: a salt per purpose, no address inside.

A token carries a row id only; forging or editing one fails signature checks, and a token
made for one purpose (say, view-online) is refused for another (unsubscribe).
"""

from __future__ import annotations

from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

from digest.config import get_settings

Purpose = Literal["unsubscribe", "preferences", "confirm", "view"]


class InvalidToken(ValueError):
    """The token is malformed, forged, or made for another purpose."""


def _serializer(purpose: Purpose, secret: str | None = None) -> URLSafeSerializer:
    return URLSafeSerializer(secret or get_settings().secret_key, salt=f"digest.{purpose}")


def make_token(purpose: Purpose, row_id: int, secret: str | None = None) -> str:
    return _serializer(purpose, secret).dumps(row_id)


def read_token(purpose: Purpose, token: str, secret: str | None = None) -> int:
    try:
        value = _serializer(purpose, secret).loads(token)
    except BadSignature as exc:
        raise InvalidToken(f"invalid {purpose} link") from exc
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidToken(f"invalid {purpose} link")
    return value


class Signer:
    """Makes many tokens fast: one serializer per purpose, reused for every recipient."""

    def __init__(self, secret: str | None = None) -> None:
        self._by_purpose = {
            p: _serializer(p, secret) for p in ("unsubscribe", "preferences", "confirm", "view")
        }

    def token(self, purpose: Purpose, row_id: int) -> str:
        return str(self._by_purpose[purpose].dumps(row_id))


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/u/{token}"


def preferences_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/p/{token}"


def view_online_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/v/{token}"

"""Cross-site request forgery: the editor's forms and where a request says it comes from.

A browser sends the session cookie again on requests another site makes it send; so a form
POST must prove it came from one of our pages:
- signed in, the form repeats the session's own random token (`digest.accounts.sessions`),
  compared in constant time; it says nothing about any password;
- before sign-in (the sign-in and first-run forms), a random token per browser in an
  HttpOnly, SameSite=Strict cookie (Secure, with the `__Host-` prefix, when the public URL is
  https) that the page repeats in a hidden field; another site can neither read nor set it;
- the request's Origin, when the browser sends one, must be DIGEST_PUBLIC_URL's origin: the
  Host header is the proxy's business (behind a reverse proxy it names the upstream).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response

from digest.config import Settings

FIELD = "csrf"
COOKIE = "digest_csrf"
SECURE_COOKIE = "__Host-digest_csrf"  # browsers accept it only Secure, on Path=/, no Domain
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128
_DEFAULT_PORTS = {"http": 80, "https": 443}


def https(settings: Settings) -> bool:
    return urlsplit(settings.public_url).scheme.lower() == "https"


def cookie_name(settings: Settings) -> str:
    return SECURE_COOKIE if https(settings) else COOKIE


def origin_of(url: str) -> str | None:
    """scheme://host[:port] as a browser writes an Origin header (no default port), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return f"{scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[scheme] else "")


def foreign_origin(request: Request, settings: Settings) -> bool:
    """True when the browser says the request comes from another site than DIGEST_PUBLIC_URL."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Our Referrer-Policy (no-referrer) makes browsers send "null": the token decides.
        return False
    ours = origin_of(settings.public_url)
    return ours is None or origin_of(origin) != ours


def _cookie(request: Request, settings: Settings) -> str | None:
    value = request.cookies.get(cookie_name(settings))
    return value if value and len(value) <= MAX_TOKEN_LENGTH else None


def session_token(request: Request, settings: Settings) -> str:
    """This browser's token for the page's forms: its cookie's, or a new one that
    `set_cookie` sends with the response."""
    token = _cookie(request, settings) or getattr(request.state, "new_csrf_token", None)
    if token is None:
        token = request.state.new_csrf_token = secrets.token_urlsafe(TOKEN_BYTES)
    return str(token)


def set_cookie(request: Request, response: Response, settings: Settings) -> None:
    """Send the cookie when `session_token` made a new token for this request."""
    token = getattr(request.state, "new_csrf_token", None)
    if token is None:
        return
    response.set_cookie(
        cookie_name(settings),
        token,
        path="/",
        secure=https(settings),
        httponly=True,
        samesite="strict",
    )


def same_token(expected: str, submitted: str | None) -> bool:
    if not expected or not submitted or len(submitted) > MAX_TOKEN_LENGTH:
        return False
    return secrets.compare_digest(expected.encode(), submitted.encode())


def token_matches(request: Request, settings: Settings, submitted: str | None) -> bool:
    """The form's token is this browser's cookie token."""
    cookie = _cookie(request, settings)
    if not cookie or not submitted or len(submitted) > MAX_TOKEN_LENGTH:
        return False
    return secrets.compare_digest(cookie.encode(), submitted.encode())

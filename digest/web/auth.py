"""Who may use the editor (/editor) and the JSON API (/api), and how their forms are protected.

Access: HTTP Basic, user "admin", password DIGEST_ADMIN_PASSWORD. With no password set the
feature is off: every /editor and /api URL answers 404 as if it did not exist, so a fresh
install never exposes an open admin. Serve it over HTTPS: Basic sends the password each time.

Sign-ins are throttled per client address and per user name (`digest.web.throttle`: 429 with
Retry-After while locked out, the password not even looked at) and logged: each failure, and a
success the first time in a while from an address; never a password.

CSRF (`digest.web.csrf`): a browser resends Basic credentials on requests another site makes
it send, so
- every editor form carries this browser's random token, matched against its cookie, and a
  POST whose Origin is not DIGEST_PUBLIC_URL's is refused;
- every API request that changes something must carry an `X-Requested-With` header: a
  cross-site form cannot send one, and a cross-site script only after a CORS preflight, which
  this app never grants.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from digest.web import csrf
from digest.web.clients import client_ip
from digest.web.deps import SettingsDep, app_settings
from digest.web.throttle import LoginThrottle

log = logging.getLogger(__name__)

ADMIN_USER = "admin"
REALM = "digest editor"
CSRF_FIELD = csrf.FIELD
API_HEADER = "X-Requested-With"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_basic = HTTPBasic(auto_error=False, realm=REALM)


class FeatureOff(HTTPException):
    """No admin password: the editor and API do not exist (404, the app's usual page)."""

    def __init__(self) -> None:
        super().__init__(status_code=404, detail="Not Found")


class Unauthorized(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            status_code=401,
            detail="sign in as admin with the editor password",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )


class TooManyAttempts(HTTPException):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            status_code=429,
            detail=f"too many failed sign-ins: try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


class CsrfRefused(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status_code=403, detail=detail)


def require_admin(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> str:
    """The signed-in user's name; 404 when the feature is off, 401 without the password, 429
    while this user name or address is locked out."""
    password = settings.admin_password
    if not password:
        raise FeatureOff()
    if credentials is None:
        raise Unauthorized()  # a browser's first request: not an attempt
    throttle: LoginThrottle = request.app.state.login_throttle
    user, address = credentials.username, client_ip(request, settings.trusted_proxies) or "unknown"
    shown = user[:64]  # logged with %r: quoted and escaped, whatever bytes it holds
    if wait := throttle.retry_after(user, address):
        log.warning("sign-in refused: %r from %s is locked out for %d s", shown, address, wait)
        raise TooManyAttempts(wait)
    # Compare both in constant time, and both always, so timing tells nothing.
    user_ok = secrets.compare_digest(user.encode(), ADMIN_USER.encode())
    password_ok = secrets.compare_digest(credentials.password.encode(), password.encode())
    if not (user_ok and password_ok):
        by_user, by_address = throttle.failed(user, address)
        log.warning(
            "failed sign-in as %r from %s (%d for this name, %d from this address)",
            shown,
            address,
            by_user,
            by_address,
        )
        raise Unauthorized()
    if throttle.succeeded(user, address):
        log.info("signed in as %r from %s", shown, address)
    return ADMIN_USER


def csrf_token(request: Request) -> str:
    """The token for this browser's forms (the page sends its cookie, `csrf.set_cookie`)."""
    return csrf.session_token(request, app_settings(request))


async def require_form_csrf(request: Request) -> None:
    """Editor forms: this browser's token in the `csrf` field, and no foreign Origin."""
    if request.method in SAFE_METHODS:
        return
    settings = app_settings(request)
    if csrf.foreign_origin(request, settings):
        raise CsrfRefused("this form was sent from another site")
    form = await request.form()  # Starlette caches it: the endpoint's Form() fields reuse it
    token = form.get(CSRF_FIELD)
    if not csrf.token_matches(request, settings, token if isinstance(token, str) else None):
        raise CsrfRefused("this form has expired or did not come from the editor; reload the page")


def require_api_header(request: Request) -> None:
    """API: requests that change something need the X-Requested-With header."""
    if request.method not in SAFE_METHODS and not request.headers.get(API_HEADER):
        raise CsrfRefused(
            f"send the header {API_HEADER} (any value) with requests that change something"
        )


AdminDep = Annotated[str, Depends(require_admin)]

"""Who may use the editor (/editor) and the JSON API (/api), and how their forms are protected.

Access: HTTP Basic, user "admin", password DIGEST_ADMIN_PASSWORD. With no password set the
feature is off: every /editor and /api URL answers 404 as if it did not exist, so a fresh
install never exposes an open admin. Serve it over HTTPS: Basic sends the password each time.

CSRF: a browser resends Basic credentials on requests another site makes it send, so
- every editor form carries a signed, expiring token (itsdangerous) in a hidden field, and a
  POST whose Origin names another host is refused;
- every API request that changes something must carry an `X-Requested-With` header: a
  cross-site form cannot send one, and a cross-site script only after a CORS preflight, which
  this app never grants.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from itsdangerous import BadSignature, URLSafeTimedSerializer

from digest.config import Settings
from digest.web.deps import SettingsDep, app_settings

ADMIN_USER = "admin"
REALM = "digest editor"
CSRF_FIELD = "csrf"
API_HEADER = "X-Requested-With"
CSRF_MAX_AGE = 12 * 3600  # an editor's page left open for a working day still submits
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


class CsrfRefused(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status_code=403, detail=detail)


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> str:
    """The signed-in user's name; 404 when the feature is off, 401 without the password."""
    password = settings.admin_password
    if not password:
        raise FeatureOff()
    if credentials is None:
        raise Unauthorized()
    # Compare both in constant time, and both always, so timing tells nothing.
    user_ok = secrets.compare_digest(credentials.username.encode(), ADMIN_USER.encode())
    password_ok = secrets.compare_digest(credentials.password.encode(), password.encode())
    if not (user_ok and password_ok):
        raise Unauthorized()
    return ADMIN_USER


def _csrf_serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt="digest.editor.csrf")


def _password_fingerprint(settings: Settings) -> str:
    # Changing the admin password invalidates the forms issued under the old one.
    return hashlib.sha256((settings.admin_password or "").encode()).hexdigest()[:16]


def csrf_token(settings: Settings) -> str:
    return str(_csrf_serializer(settings).dumps(_password_fingerprint(settings)))


def csrf_valid(settings: Settings, token: str | None) -> bool:
    if not token or len(token) > 512:
        return False
    try:
        value = _csrf_serializer(settings).loads(token, max_age=CSRF_MAX_AGE)
    except BadSignature:  # includes SignatureExpired
        return False
    return isinstance(value, str) and secrets.compare_digest(value, _password_fingerprint(settings))


def _cross_origin(request: Request) -> bool:
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Our Referrer-Policy (no-referrer) makes browsers send "null": the token decides.
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


async def require_form_csrf(request: Request) -> None:
    """Editor forms: a valid signed token in the `csrf` field, and no foreign Origin."""
    if request.method in SAFE_METHODS:
        return
    if _cross_origin(request):
        raise CsrfRefused("this form was sent from another site")
    form = await request.form()  # Starlette caches it: the endpoint's Form() fields reuse it
    token = form.get(CSRF_FIELD)
    if not csrf_valid(app_settings(request), token if isinstance(token, str) else None):
        raise CsrfRefused("this form has expired or did not come from the editor; reload the page")


def require_api_header(request: Request) -> None:
    """API: requests that change something need the X-Requested-With header."""
    if request.method not in SAFE_METHODS and not request.headers.get(API_HEADER):
        raise CsrfRefused(
            f"send the header {API_HEADER} (any value) with requests that change something"
        )


AdminDep = Annotated[str, Depends(require_admin)]

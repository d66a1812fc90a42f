"""Signing in and out of the editor, and the first-run page of a fresh install.

Sign-in (/editor/signin): the address and password of an enabled user (`digest.accounts.users`)
start a server-side session. Failures are throttled per address and per user name
(`digest.web.throttle`: 429 with Retry-After while locked out, the password not even looked
at) and logged, never with the password. The form itself is protected against login CSRF by
the per-browser cookie token of `digest.web.csrf`.

First run (/editor/setup): while no user exists, it asks for the first admin instead of
shipping a default password. Whoever reaches it first owns the install, so it is open only to
a browser on this machine talking to the app directly (a loopback peer, no proxy headers),
or to whoever has the one-time setup token `digest serve` prints (DIGEST_SETUP_TOKEN). Once a
user exists it answers 404.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from digest.accounts import audit, sessions, users
from digest.errors import DigestError
from digest.web import csrf
from digest.web.auth import (
    CsrfRefused,
    address_of,
    clear_session_cookie,
    session_cookie_name,
    set_session_cookie,
)
from digest.web.deps import SessionDep, SettingsDep, app_settings
from digest.web.editor import EDITOR_CSP, STYLESHEET, EditorRoute
from digest.web.templating import render, root_path
from digest.web.throttle import LoginThrottle

log = logging.getLogger(__name__)

router = APIRouter(prefix="/editor", include_in_schema=False, route_class=EditorRoute)
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host")


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    settings = app_settings(request)
    values = {
        "csrf": csrf.session_token(request, settings),
        "signed_in": False,
        "principal": None,
        "section": "",
        "notice": None,
        "error": None,
        **context,
    }
    response = render(request, f"editor/{template}", values, status)
    response.headers["content-security-policy"] = EDITOR_CSP
    csrf.set_cookie(request, response, settings)
    return response


def _check_form(request: Request, token: str | None) -> None:
    settings = app_settings(request)
    if csrf.foreign_origin(request, settings):
        raise CsrfRefused("this form was sent from another site")
    if not csrf.token_matches(request, settings, token):
        raise CsrfRefused("this form has expired; reload the page and try again")


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: one of the editor's own paths, never another site."""
    if value and value.startswith("/editor/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/editor/issues"


@router.get("/assets/editor.css")
def stylesheet() -> FileResponse:
    return FileResponse(
        STYLESHEET, media_type="text/css", headers={"cache-control": "private, max-age=300"}
    )


@router.get("/signin", response_class=HTMLResponse)
def signin_page(
    request: Request,
    session: SessionDep,
    next: Annotated[str | None, Query(max_length=2000)] = None,
    out: bool = False,
) -> Response:
    if not users.count_users(session):
        return RedirectResponse(f"{root_path(request)}/editor/setup", status_code=303)
    notice = "Signed out." if out else None
    return _page(request, "signin.html", {"next": _safe_next(next), "notice": notice})


@router.post("/signin")
def signin(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=4096)],
    csrf_field: Annotated[str | None, Form(alias="csrf", max_length=200)] = None,
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    _check_form(request, csrf_field)
    throttle: LoginThrottle = request.app.state.login_throttle
    name, address = email.strip().lower(), address_of(request)
    shown = name[:64]  # logged with %r: quoted and escaped, whatever bytes it holds
    if wait := throttle.retry_after(name, address):
        log.warning("sign-in refused: %r from %s is locked out for %d s", shown, address, wait)
        error = f"Too many failed sign-ins: try again in {wait} s."
        context = {"next": _safe_next(next), "email": email, "error": error}
        response = _page(request, "signin.html", context, 429)
        response.headers["Retry-After"] = str(wait)
        return response
    user = users.authenticate(session, email, password)
    if user is None:
        by_user, by_address = throttle.failed(name, address)
        log.warning(
            "failed sign-in as %r from %s (%d for this name, %d from this address)",
            shown,
            address,
            by_user,
            by_address,
        )
        context = {"next": _safe_next(next), "email": email, "error": "Wrong address or password."}
        return _page(request, "signin.html", context, 401)
    if throttle.succeeded(name, address):
        log.info("signed in as %r from %s", shown, address)
    started = sessions.start_session(session, user, address=address, hours=settings.session_hours)
    response = RedirectResponse(f"{root_path(request)}{_safe_next(next)}", status_code=303)
    set_session_cookie(request, response, started.token)
    return response


@router.post("/signout")
def signout(
    request: Request,
    session: SessionDep,
    csrf_field: Annotated[str | None, Form(alias="csrf", max_length=200)] = None,
) -> Response:
    """End this browser's session (its own token proves the form is ours)."""
    token = request.cookies.get(session_cookie_name(request))
    web = sessions.find_session(session, token)
    if web is not None:
        if csrf.foreign_origin(request, app_settings(request)) or not csrf.same_token(
            web.csrf_token, csrf_field
        ):
            raise CsrfRefused("this form has expired; reload the page and try again")
        sessions.end_session(session, token)
    response = RedirectResponse(f"{root_path(request)}/editor/signin?out=1", status_code=303)
    clear_session_cookie(request, response)
    return response


def _direct_from_this_machine(request: Request) -> bool:
    if any(request.headers.get(h) for h in PROXY_HEADERS):
        return False
    peer = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


def _setup_gate(request: Request, session: SessionDep, token: str | None) -> None:
    """404 once any user exists (the page no longer exists); else 403 unless the browser is
    on this machine or has the setup token."""
    if users.count_users(session):
        raise HTTPException(404, "Not Found")
    expected = app_settings(request).setup_token
    if expected and csrf.same_token(expected, token):
        return
    if _direct_from_this_machine(request):
        return
    raise HTTPException(
        403,
        "Open the first-run link `digest serve` printed (it holds the setup token), "
        "or this page from the machine the app runs on.",
    )


@router.get("/setup", response_class=HTMLResponse)
def setup_page(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    _setup_gate(request, session, token)
    return _page(request, "setup.html", {"token": token or ""})


@router.post("/setup")
def setup(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=4096)],
    password_again: Annotated[str, Form(max_length=4096)],
    name: Annotated[str, Form(max_length=200)] = "",
    token: Annotated[str | None, Form(max_length=200)] = None,
    csrf_field: Annotated[str | None, Form(alias="csrf", max_length=200)] = None,
) -> Response:
    _check_form(request, csrf_field)
    _setup_gate(request, session, token)
    context: dict[str, Any] = {"token": token or "", "email": email, "name": name}
    if password != password_again:
        return _page(request, "setup.html", context | {"error": "The passwords differ."}, 400)
    try:
        user = users.add_first_admin(session, email, password, name=name)
    except DigestError as exc:
        session.rollback()
        return _page(request, "setup.html", context | {"error": str(exc)}, 400)
    address = address_of(request)
    actor = audit.Actor(name=user.email, address=address, user_id=user.id)
    audit.record(session, actor, "first_admin", "user", user.id, {"role": user.role.value})
    log.info("first admin %r created from %s", user.email, address)
    started = sessions.start_session(session, user, address=address, hours=settings.session_hours)
    response = RedirectResponse(f"{root_path(request)}/editor/issues?done=welcome", 303)
    set_session_cookie(request, response, started.token)
    return response

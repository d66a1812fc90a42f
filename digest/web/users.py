"""The admin's pages for people: users and their roles (/editor/users), the audit log
(/editor/audit), and each user's own account with their API tokens (/editor/account).

Access, roles, CSRF and the audit log as in `digest.web.auth`, like every editor page.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from digest.accounts import api_tokens, audit, users
from digest.db import MAX_BIGINT, MAX_INT
from digest.errors import DigestError, NotFound
from digest.models import Role, User
from digest.web.auth import (
    AdminDep,
    AuditDep,
    ViewerDep,
    current_user,
    needs,
    require_form_csrf,
)
from digest.web.deps import SessionDep, mark_failed
from digest.web.editor import EditorRoute, page, see_other

router = APIRouter(
    prefix="/editor",
    route_class=EditorRoute,
    include_in_schema=False,
    dependencies=[Depends(current_user), Depends(require_form_csrf), AuditDep],
)
UserId = Annotated[int, Path(ge=1, le=MAX_INT)]
TokenId = Annotated[int, Path(ge=1, le=MAX_INT)]
NOTICES = {
    "added": "User added. Give them their address and password; they can change nothing else.",
    "role": "Role changed.",
    "disabled": "User disabled: signed out everywhere, API tokens revoked.",
    "enabled": "User enabled.",
    "password": "Password set. The user is signed out everywhere.",
    "revoked": "Token revoked.",
}


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def _users_page(
    request: Request,
    session: Session,
    *,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "section": "users",
        "rows": users.list_users(session),
        "roles": [r.value for r in Role],
        "notice": notice,
        "error": error,
        "form": form or {},
    }
    return page(request, "users.html", context, status)


@router.get("/users", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)])
def users_page(request: Request, session: SessionDep, done: str | None = None) -> Response:
    return _users_page(request, session, notice=NOTICES.get(done or ""))


@router.post("/users", dependencies=[needs(Role.ADMIN)])
def add_user(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=4096)],
    role: Annotated[Role, Form()] = Role.VIEWER,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        user = users.add_user(session, email, password, role=role, name=name)
    except DigestError as exc:
        session.rollback()
        mark_failed(request)
        form = {"email": email, "name": name, "role": role.value}
        return _users_page(request, session, error=str(exc), form=form, status=400)
    request.state.audit_detail = {"email": user.email, "role": user.role.value}
    request.state.audit_target = ("user", user.id)
    return see_other(request, "/users?done=added")


def _change(request: Request, session: Session, user_id: int, change: Any, done: str) -> Response:
    user = _user(session, user_id)
    try:
        change(user.email)
    except NotFound:
        raise
    except DigestError as exc:
        session.rollback()
        mark_failed(request)
        return _users_page(request, session, error=str(exc), status=409)
    request.state.audit_detail = {"email": user.email, **getattr(request.state, "audit_detail", {})}
    return see_other(request, f"/users?done={done}")


@router.post("/users/{user_id}/role", dependencies=[needs(Role.ADMIN)])
def set_role(
    request: Request, session: SessionDep, user_id: UserId, role: Annotated[Role, Form()]
) -> Response:
    request.state.audit_detail = {"role": role.value}
    return _change(request, session, user_id, lambda e: users.set_role(session, e, role), "role")


@router.post("/users/{user_id}/disable", dependencies=[needs(Role.ADMIN)])
def disable(request: Request, session: SessionDep, user_id: UserId) -> Response:
    return _change(request, session, user_id, lambda e: users.disable_user(session, e), "disabled")


@router.post("/users/{user_id}/enable", dependencies=[needs(Role.ADMIN)])
def enable(request: Request, session: SessionDep, user_id: UserId) -> Response:
    return _change(request, session, user_id, lambda e: users.enable_user(session, e), "enabled")


@router.post("/users/{user_id}/password", dependencies=[needs(Role.ADMIN)])
def set_password(
    request: Request,
    session: SessionDep,
    user_id: UserId,
    password: Annotated[str, Form(max_length=4096)],
) -> Response:
    return _change(
        request,
        session,
        user_id,
        lambda e: users.set_password(session, e, password),
        "password",
    )


def _day(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%d") if value else None
    except ValueError:
        return None


@router.get("/audit", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)])
def audit_page(
    request: Request,
    session: SessionDep,
    _admin: AdminDep,
    actor: Annotated[str, Query(max_length=320)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    target_kind: Annotated[str, Query(max_length=32)] = "",
    target_id: Annotated[str, Query(max_length=320)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    before: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
) -> Response:
    """Newest first, a page at a time (keyset: `before` the last id shown), with filters."""
    last_day = _day(until)
    filters = audit.Filters(
        actor=actor.strip().lower() if "@" in actor else actor.strip(),
        action=action.strip(),
        target_kind=target_kind.strip(),
        target_id=target_id.strip(),
        since=_day(since),
        until=last_day + timedelta(days=1) if last_day else None,
        before_id=before,
        limit=audit.PAGE,
    )
    rows = audit.entries(session, filters)
    query = {
        "actor": actor,
        "action": action,
        "target_kind": target_kind,
        "target_id": target_id,
        "since": since,
        "until": until,
    }
    context = {
        "section": "audit",
        "rows": rows,
        "filters": query,
        "more": len(rows) == audit.PAGE,
        "next_before": rows[-1].id if rows else None,
        "kinds": ["issue", "list", "source", "subscriber", "user", "api token"],
    }
    return page(request, "audit.html", context)


@router.get("/account", response_class=HTMLResponse, dependencies=[needs(Role.VIEWER)])
def account_page(
    request: Request, session: SessionDep, me: ViewerDep, done: str | None = None
) -> Response:
    return _account(request, session, me.user_id, notice=NOTICES.get(done or ""))


def _account(
    request: Request,
    session: Session,
    user_id: int,
    *,
    notice: str | None = None,
    new_token: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "section": "account",
        "tokens": api_tokens.user_tokens(session, user_id),
        "new_token": new_token,
        "notice": notice,
    }
    return page(request, "account.html", context, status)


@router.post("/account/tokens", dependencies=[needs(Role.VIEWER)])
def new_token(
    request: Request,
    session: SessionDep,
    me: ViewerDep,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """A new API token, shown this once (the page is not cached: no-store)."""
    issued = api_tokens.issue_token(session, _user(session, me.user_id), name)
    request.state.audit_detail = {"token": issued.row.prefix, "name": issued.row.name}
    notice = "Copy this token now: it is shown only once."
    return _account(request, session, me.user_id, notice=notice, new_token=issued.token)


@router.post("/account/tokens/{token_id}/revoke", dependencies=[needs(Role.VIEWER)])
def revoke_token(
    request: Request,
    session: SessionDep,
    me: ViewerDep,
    token_id: TokenId,
) -> Response:
    api_tokens.revoke_token(session, me.user_id, token_id)
    return see_other(request, "/account?done=revoked")

"""Who may use the editor (/editor) and the JSON API (/api/v1), and how their forms are protected.

Access: a user signs in (`digest.web.signin`) and gets a server-side session
(`digest.accounts.sessions`) whose random token is the cookie: HttpOnly, SameSite=Lax, Secure
with the `__Host-` prefix when DIGEST_PUBLIC_URL is https. Scripts may instead send a user's
API token as `Authorization: Bearer dgt_...` to /api/v1.

Roles: each route declares the least role it needs with one dependency (`needs(Role.EDITOR)`;
viewer < editor < publisher < admin). Nobody signed in: 401 (the editor's pages redirect to the
sign-in page); signed in with too low a role: 403. The check is never written in a handler.

CSRF (`digest.web.csrf`): a browser sends the session cookie on requests another site makes
it send, so
- every editor form carries the session's own random token (made at sign-in), and a POST whose
  Origin is not DIGEST_PUBLIC_URL's is refused;
- every API request that changes something, signed in by the cookie, must carry an
  `X-Requested-With` header: a cross-site form cannot send one, and a cross-site script only
  after a CORS preflight, which this app never grants. A bearer token is never sent by a
  browser on its own, so it needs no header.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, Response
from fastapi.params import Depends as DependsParam

from digest.accounts import api_tokens, audit, sessions
from digest.models import Role
from digest.web import csrf
from digest.web.clients import client_ip
from digest.web.deps import SessionDep, app_settings

log = logging.getLogger(__name__)

CSRF_FIELD = csrf.FIELD
API_HEADER = "X-Requested-With"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_COOKIE = "digest_session"
SECURE_SESSION_COOKIE = "__Host-digest_session"


class Unauthorized(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            status_code=401,
            detail="sign in first (or send an API token: Authorization: Bearer ...)",
            headers={"WWW-Authenticate": 'Bearer realm="digest"'},
        )


class Forbidden(HTTPException):
    def __init__(self, role: Role, needed: Role) -> None:
        super().__init__(
            status_code=403, detail=f"your role ({role}) may not do this: it needs {needed}"
        )


class CsrfRefused(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status_code=403, detail=detail)


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user of this request."""

    user_id: int
    email: str
    name: str
    role: Role
    via: Literal["session", "token"]
    csrf_token: str  # the session's ("" for an API token)
    address: str

    def can(self, role: Role | str) -> bool:
        return self.role.allows(Role(role))

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor(name=self.email, address=self.address, user_id=self.user_id)


def session_cookie_name(request: Request) -> str:
    return SECURE_SESSION_COOKIE if csrf.https(app_settings(request)) else SESSION_COOKIE


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    settings = app_settings(request)
    response.set_cookie(
        session_cookie_name(request),
        token,
        max_age=int(settings.session_hours * 3600),
        path="/",
        secure=csrf.https(settings),
        httponly=True,
        samesite="lax",  # a link to the editor from a mail keeps its session; forms need CSRF
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    settings = app_settings(request)
    response.delete_cookie(
        session_cookie_name(request),
        path="/",
        secure=csrf.https(settings),
        httponly=True,
        samesite="lax",
    )


def address_of(request: Request) -> str:
    return client_ip(request, app_settings(request).trusted_proxies) or "unknown"


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _under_api(request: Request) -> bool:
    """API tokens open the JSON API only; the editor's pages need a session (and its CSRF
    token)."""
    path = str(request.scope.get("path", ""))
    root = str(request.scope.get("root_path", "")).rstrip("/")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.startswith("/api/")


def current_user(request: Request, session: SessionDep) -> Principal:
    """The signed-in user (session cookie, or an API token under /api/v1); 401 without one."""
    bearer: str | None
    address = address_of(request)
    principal: Principal | None = None
    if _under_api(request) and (bearer := _bearer(request)) is not None:
        token = api_tokens.find_token(session, bearer)
        if token is None:
            log.warning("refused API token from %s", address)
            raise Unauthorized()
        user = token.user
        principal = Principal(user.id, user.email, user.name, user.role, "token", "", address)
    elif web := sessions.find_session(session, request.cookies.get(session_cookie_name(request))):
        user = web.user
        principal = Principal(
            user.id, user.email, user.name, user.role, "session", web.csrf_token, address
        )
    if principal is None:
        raise Unauthorized()
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_user)]


class RoleGuard:
    """The dependency a route declares: the least role that may use it."""

    def __init__(self, role: Role) -> None:
        self.role = role

    def __call__(self, principal: PrincipalDep) -> Principal:
        if not principal.can(self.role):
            log.info("refused %s (%s): needs %s", principal.email, principal.role, self.role)
            raise Forbidden(principal.role, self.role)
        return principal

    def __repr__(self) -> str:
        return f"RoleGuard({self.role})"


GUARDS = {role: RoleGuard(role) for role in Role}


def needs(role: Role) -> DependsParam:
    """`dependencies=[needs(Role.EDITOR)]` on a route: editors and above only."""
    guard: DependsParam = Depends(GUARDS[role])
    return guard


ViewerDep = Annotated[Principal, Depends(GUARDS[Role.VIEWER])]
EditorDep = Annotated[Principal, Depends(GUARDS[Role.EDITOR])]
PublisherDep = Annotated[Principal, Depends(GUARDS[Role.PUBLISHER])]
AdminDep = Annotated[Principal, Depends(GUARDS[Role.ADMIN])]


def csrf_token(request: Request) -> str:
    """The token for this page's forms: the session's."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal.csrf_token if principal else ""


async def require_form_csrf(request: Request, principal: PrincipalDep) -> None:
    """Editor forms: the session's token in the `csrf` field, and no foreign Origin."""
    if request.method in SAFE_METHODS:
        return
    settings = app_settings(request)
    if csrf.foreign_origin(request, settings):
        raise CsrfRefused("this form was sent from another site")
    form = await request.form()  # Starlette caches it: the endpoint's Form() fields reuse it
    token = form.get(CSRF_FIELD)
    submitted = token if isinstance(token, str) else None
    if not principal.csrf_token or not csrf.same_token(principal.csrf_token, submitted):
        raise CsrfRefused("this form has expired or did not come from the editor; reload the page")


def require_api_header(request: Request, principal: PrincipalDep) -> None:
    """API: requests that change something, signed in by cookie, need X-Requested-With."""
    if (
        request.method not in SAFE_METHODS
        and principal.via == "session"
        and not request.headers.get(API_HEADER)
    ):
        raise CsrfRefused(
            f"send the header {API_HEADER} (any value) with requests that change something"
        )


# The path parameter that names what a route acts on, and the audit log's word for it.
TARGETS = (
    ("issue_id", "issue"),
    ("subscriber_id", "subscriber"),
    ("source_id", "source"),
    ("slug", "list"),
    ("user_id", "user"),
    ("token_id", "api token"),
)


def audited(request: Request, session: SessionDep, principal: PrincipalDep) -> Iterator[None]:
    """Every change a route makes is logged with who, what (the route's name), which
    (its path's id), when and from where, in the change's own transaction. A change that
    failed or was refused logs nothing; a route may add `request.state.audit_detail`, and
    name what it made in `request.state.audit_target` (kind, id)."""
    yield
    if request.method in SAFE_METHODS or getattr(request.state, "rolled_back", False):
        return
    params = request.path_params
    named = getattr(request.state, "audit_target", None)  # a route that made its target
    kind, target = named or next(((k, params[p]) for p, k in TARGETS if p in params), ("", ""))
    detail = dict(getattr(request.state, "audit_detail", None) or {})
    if "item_id" in params:
        detail.setdefault("item_id", params["item_id"])
    route = request.scope.get("route")
    action = getattr(route, "name", "") or request.url.path
    audit.record(session, principal.actor, action, kind, target, detail)


AuditDep = Depends(audited, scope="function")

"""The FastAPI app behind every link in a message (`digest serve` runs it with uvicorn)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from digest.checks import readiness
from digest.config import Settings, get_settings
from digest.db import session_factory
from digest.keys import public_url_warning, signing_keys
from digest.live_metrics import QUEUES, LiveCollector, redis_client
from digest.metrics import CONTENT_TYPE, exposition, registry
from digest.web.api import router as api_router
from digest.web.archive import router as archive_router
from digest.web.editor import router as editor_router
from digest.web.i18n import N_, page_language
from digest.web.lists_pages import router as lists_router
from digest.web.pages import router as pages_router
from digest.web.security import SecurityHeaders
from digest.web.signin import router as signin_router
from digest.web.signup import router as signup_router
from digest.web.sources_pages import router as sources_router
from digest.web.subscribers_pages import router as subscribers_router
from digest.web.templating import STATIC_DIR, render
from digest.web.throttle import login_throttle
from digest.web.users import router as users_router

log = logging.getLogger(__name__)

# What a subscriber reads when a link fails, by status: plain words, no internals.
# Each is said in the visitor's language (the web catalogue's words: N_ marks them).
ERRORS: dict[int, tuple[str, str]] = {
    400: (
        N_("This link doesn’t work"),
        N_(
            "It may have been cut short or changed on the way. Open the link again from the "
            "email itself, or copy the whole address into your browser."
        ),
    ),
    404: (
        N_("We couldn’t find that"),
        N_("The subscription or issue this link points to no longer exists."),
    ),
    405: (N_("This link doesn’t work"), N_("This address can’t be used that way.")),
    429: (N_("Too many requests"), N_("Please wait a little and try again.")),
    500: (
        N_("Something went wrong on our side"),
        N_("Nothing was changed. Please try again in a few minutes."),
    ),
}


def _is_api(request: Request) -> bool:
    path = str(request.scope.get("path", ""))
    root = str(request.scope.get("root_path", "")).rstrip("/")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == "/api" or path.startswith("/api/")


def _error(
    request: Request, status: int, headers: Mapping[str, str] | None = None, detail: str = ""
) -> Response:
    """Under /api, JSON {"detail": ...}; elsewhere the page a subscriber can read."""
    if _is_api(request):
        body = {"detail": detail or HTTPStatus(status).phrase}
        return JSONResponse(body, status_code=status, headers=headers)
    title, message = ERRORS.get(status, (HTTPStatus(status).phrase, ""))
    language = page_language(request)  # the link named nobody we could ask
    context = {"title": title, "message": message}
    response = render(request, "error.html", context, status, language=language)
    response.headers.update(headers or {})  # Allow on a 405, Retry-After on a 429 ...
    return response


def _allowed(request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.state.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        return await _server_error(request, exc)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request)
    return _error(request, exc.status_code, headers, str(exc.detail))


async def _invalid_request(request: Request, exc: Exception) -> Response:
    # A malformed form or query on a public page is a bad link or a bad client, not a 422 API.
    return _error(request, 400, detail="invalid request")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(request, 500, detail="internal error; nothing was changed")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; InsecureKey when the links it reads would be checked against no key or a
    published one (outside development mode)."""
    settings = settings or get_settings()
    keys = signing_keys(settings)
    if warning := public_url_warning(settings):
        log.warning("%s", warning)
    app = FastAPI(
        title="digest",
        # No public docs: the API's OpenAPI document is served to a signed-in user only.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # Every link the app signs or reads uses these settings' keys, whatever the environment
    # says later (a test, or a second app in one process, may hold other settings).
    app.state.settings = settings
    app.state.link_keys = keys
    app.state.sessionmaker = session_factory(settings.database_url)
    app.state.login_throttle = login_throttle(settings.shared_redis_url)

    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _server_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    routers = (
        pages_router,
        archive_router,
        signin_router,
        editor_router,
        users_router,
        subscribers_router,
        lists_router,
        sources_router,
        api_router,
        signup_router,
    )
    for router in routers:
        app.include_router(router)

    @app.get("/healthz")
    def healthz() -> Response:
        """The process is alive and serving (asks nothing else: a restart would not help a
        database that is down)."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        """The database answers, and Redis when one is configured: send traffic here."""
        checks = readiness(settings, app.state.sessionmaker)
        body = {c.name: "ok" if c.ok else "unreachable" for c in checks}
        if all(c.ok for c in checks):
            return JSONResponse({"status": "ok", **body})
        for check in checks:
            if not check.ok:
                log.warning("not ready: %s %s", check.name, check.detail)
        return JSONResponse({"status": "error", **body}, status_code=503)

    served = registry(
        LiveCollector(app.state.sessionmaker, redis_client(settings.broker_url), QUEUES)
    )

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        """Prometheus text format: this process's counters (every process's in multiprocess
        mode) and the live gauges. Keep it off the public proxy (it names queue depths)."""
        return Response(exposition(served), media_type=CONTENT_TYPE)

    # For the Allow header of a 405 (FastAPI nests included routers: list their routes here).
    own = [route for route in app.router.routes if isinstance(route, Route)]
    app.state.routes = [*own, *(route for router in routers for route in router.routes)]
    return app

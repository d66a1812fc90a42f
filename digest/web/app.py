"""The FastAPI app behind every link in a message (`digest serve` runs it with uvicorn)."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException

from digest.config import Settings, get_settings
from digest.db import session_factory
from digest.web.api import router as api_router
from digest.web.editor import router as editor_router
from digest.web.pages import router as pages_router
from digest.web.security import SecurityHeaders
from digest.web.signup import router as signup_router
from digest.web.templating import STATIC_DIR, render

log = logging.getLogger(__name__)

# What a subscriber reads when a link fails, by status: plain words, no internals.
ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "This link doesn’t work",
        "It may have been cut short or changed on the way. Open the link again from the "
        "email itself, or copy the whole address into your browser.",
    ),
    404: (
        "We couldn’t find that",
        "The subscription or issue this link points to no longer exists.",
    ),
    405: ("This link doesn’t work", "This address can’t be used that way."),
    500: (
        "Something went wrong on our side",
        "Nothing was changed. Please try again in a few minutes.",
    ),
}


def _error_page(request: Request, status: int) -> Response:
    title, message = ERRORS.get(status, (HTTPStatus(status).phrase, ""))
    return render(request, "error.html", {"title": title, "message": message}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return _error_page(request, status)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    # A malformed form or query on a public page is a bad link or a bad client, not a 422 API.
    return _error_page(request, 400)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_page(request, 500)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="digest",
        # Public pages only for now: no interactive API docs on the internet.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.sessionmaker = session_factory(settings.database_url)

    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _server_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(pages_router)
    app.include_router(editor_router)
    app.include_router(api_router)
    app.include_router(signup_router)

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            with app.state.sessionmaker() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            log.exception("health check: database unreachable")
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app

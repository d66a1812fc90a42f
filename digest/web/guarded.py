"""What the editor and the API routes share: errors answered by the route itself.

The app's exception handlers speak to subscribers (HTML pages, no headers kept), so the
editor and API routes answer their own errors: the editor sends a 401 to the sign-in page,
the API answers JSON. An error answered that way leaves the endpoint normally, so the session
dependency is told (`deps.mark_failed`) to roll back instead of committing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response

from digest.errors import DigestError
from digest.web.deps import mark_failed

Handled = HTTPException | RequestValidationError | DigestError


class GuardedRoute(APIRoute):
    """A route whose HTTP, validation and domain errors become `answer(request, exc)`."""

    @staticmethod
    async def answer(request: Request, exc: Handled) -> Response:
        raise NotImplementedError

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        answer = self.answer

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (HTTPException, RequestValidationError, DigestError) as exc:
                mark_failed(request)
                return await answer(request, exc)

        return guarded

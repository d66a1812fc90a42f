"""What every JSON API module shares: the route class that answers errors as JSON, the
models' base and the wire form of a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from digest.errors import NotFound
from digest.web.guarded import GuardedRoute, Handled


def _as_utc(value: datetime) -> datetime:
    # The store keeps naive UTC; say so on the wire.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcTime = Annotated[datetime, AfterValidator(_as_utc)]


def _validation_summary(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


class ApiRoute(GuardedRoute):
    @staticmethod
    async def answer(request: Request, exc: Handled) -> Response:
        if isinstance(exc, HTTPException):
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        if isinstance(exc, RequestValidationError):
            body = {"detail": _validation_summary(exc), "errors": jsonable_encoder(exc.errors())}
            return JSONResponse(body, 422)
        return JSONResponse({"detail": str(exc)}, 404 if isinstance(exc, NotFound) else 400)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)

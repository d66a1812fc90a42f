"""The admin's subscriber pages: search (/editor/subscribers), one subscriber's record
(/editor/subscribers/{id}) and a CSV upload (/editor/subscribers/import). Access, roles, CSRF
and the audit log as in `digest.web.auth` (admins only)."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response

from digest.db import MAX_BIGINT
from digest.errors import DigestError
from digest.models import MailingList, Role, SubscriptionStatus
from digest.subscribers import search
from digest.subscribers.service import import_rows
from digest.web.auth import AuditDep, current_user, needs, require_form_csrf
from digest.web.deps import SessionDep, mark_failed
from digest.web.editor import EditorRoute, page

router = APIRouter(
    prefix="/editor",
    route_class=EditorRoute,
    include_in_schema=False,
    dependencies=[Depends(current_user), Depends(require_form_csrf), AuditDep],
)
SubscriberId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]


@router.get("/subscribers", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)])
def subscribers_page(
    request: Request,
    session: SessionDep,
    q: Annotated[str, Query(max_length=320)] = "",
    # The filter form sends every field, empty when not chosen: "" is "any".
    list_: Annotated[str, Query(alias="list", pattern=r"^[0-9]{0,9}$")] = "",
    status_: Annotated[str, Query(alias="status", max_length=16)] = "",
    suppressed: search.Suppressed = search.Suppressed.ANY,
    before: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
) -> Response:
    list_id = int(list_) if list_ and int(list_) > 0 else None
    try:
        status = SubscriptionStatus(status_) if status_ else None
    except ValueError:
        error = {"loc": ("query", "status"), "msg": "no such status"}
        raise RequestValidationError([error]) from None
    query = search.Query(
        text=q, list_id=list_id, status=status, suppressed=suppressed, before_id=before
    )
    found = search.search(session, query)
    filters = {
        "q": q,
        "list": str(list_id or ""),
        "status": status.value if status else "",
        "suppressed": suppressed.value,
    }
    context = {
        "section": "subscribers",
        "page_rows": found.rows,
        "next_before": found.next_before,
        "filters": filters,
        "lists": search.list_choices(session),
        "statuses": [s.value for s in SubscriptionStatus],
        "first_page": before is None,
    }
    return page(request, "subscribers.html", context)


SHOWN_ERRORS = 1000


def _import_page(
    request: Request,
    session: SessionDep,
    *,
    result: object = None,
    error: str | None = None,
    chosen: int | None = None,
    status: int = 200,
) -> Response:
    context = {
        "section": "subscribers",
        "lists": search.list_choices(session),
        "result": result,
        "shown_errors": SHOWN_ERRORS,
        "error": error,
        "chosen": chosen,
    }
    return page(request, "subscribers_import.html", context, status)


@router.get("/subscribers/import", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)])
def import_form(request: Request, session: SessionDep) -> Response:
    return _import_page(request, session)


@router.post("/subscribers/import", dependencies=[needs(Role.ADMIN)])
def import_upload(
    request: Request,
    session: SessionDep,
    list_id: Annotated[int, Form(alias="list", ge=1, le=2**31 - 1)],
    file: Annotated[UploadFile, File()],
    consent: Annotated[str | None, Form()] = None,
) -> Response:
    """The file is streamed to disk by the form parser and read row by row from there."""
    lst = session.get(MailingList, list_id)
    if lst is None:
        mark_failed(request)
        return _import_page(request, session, error="No such list.", status=400)
    stream = io.TextIOWrapper(file.file, encoding="utf-8-sig", newline="")
    try:
        result = import_rows(session, lst.id, stream, consent_recorded=consent == "yes")
    except (DigestError, UnicodeDecodeError) as exc:
        session.rollback()
        mark_failed(request)
        message = "the file is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc
        return _import_page(request, session, error=f"Not imported: {message}.", chosen=lst.id)
    request.state.audit_target = ("list", lst.slug)
    request.state.audit_detail = {
        "file": (file.filename or "")[:100],
        "added": result.added,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "rejected": len(result.errors),
        "consent_recorded": consent == "yes",
    }
    return _import_page(request, session, result=result, chosen=lst.id)


# After /subscribers/import: a path with an id matches any word.
@router.get(
    "/subscribers/{subscriber_id}", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)]
)
def subscriber_page(request: Request, session: SessionDep, subscriber_id: SubscriberId) -> Response:
    record = search.record(session, subscriber_id)
    return page(request, "subscriber.html", {"section": "subscribers", "record": record})

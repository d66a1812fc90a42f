"""The admin's subscriber pages: search (/editor/subscribers) and one subscriber's record
(/editor/subscribers/{id}). Access, roles and CSRF as in `digest.web.auth` (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from digest.db import MAX_BIGINT
from digest.models import MailingList, Role, SubscriptionStatus
from digest.subscribers import search
from digest.web.auth import AuditDep, current_user, needs, require_form_csrf
from digest.web.deps import SessionDep
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
    list_id: Annotated[int | None, Query(alias="list", ge=1, le=2**31 - 1)] = None,
    status: SubscriptionStatus | None = None,
    suppressed: search.Suppressed = search.Suppressed.ANY,
    before: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
) -> Response:
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
        "lists": session.scalars(select(MailingList).order_by(MailingList.name)).all(),
        "statuses": [s.value for s in SubscriptionStatus],
        "first_page": before is None,
    }
    return page(request, "subscribers.html", context)


@router.get(
    "/subscribers/{subscriber_id}", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)]
)
def subscriber_page(request: Request, session: SessionDep, subscriber_id: SubscriberId) -> Response:
    record = search.record(session, subscriber_id)
    return page(request, "subscriber.html", {"section": "subscribers", "record": record})

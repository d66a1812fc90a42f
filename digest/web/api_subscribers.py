"""The JSON API's subscriber and suppression operations (admins only), added to
`digest.web.api.router` by `routes.register`: the same service functions as the admin's pages
and the CLI.

Addresses never go to the audit log: entries name subscribers and suppressions by id, so an
erasure leaves no address in clear behind.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from digest.db import MAX_BIGINT
from digest.errors import DigestError
from digest.models import Role, SubscriptionStatus, SuppressionReason
from digest.subscribers import export, gdpr, manage, search, suppression
from digest.subscribers.addresses import MAX_LENGTH
from digest.subscribers.lists import get_list
from digest.subscribers.service import import_rows
from digest.subscribers.topics import parse_topic_ids, topics_of_lists
from digest.web.api_base import Out, UtcTime
from digest.web.auth import needs
from digest.web.deps import SessionDep
from digest.web.params import SearchText, Slug, SlugQuery


class Routes:
    """Routes declared here and added to the API's router there (its prefix, dependencies,
    error answers and OpenAPI document), without an import cycle between the two modules."""

    def __init__(self) -> None:
        self.table: list[tuple[str, Callable[..., Any], str, dict[str, Any]]] = []

    def _add(self, method: str, path: str, **kwargs: Any) -> Callable[[F], F]:
        def add(endpoint: F) -> F:
            self.table.append((path, endpoint, method, kwargs))
            return endpoint

        return add

    def get(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self._add("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self._add("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self._add("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self._add("DELETE", path, **kwargs)

    def register(self, router: APIRouter) -> None:
        for path, endpoint, method, kwargs in self.table:
            router.add_api_route(path, endpoint, methods=[method], tags=["subscribers"], **kwargs)


F = TypeVar("F", bound=Callable[..., Any])
routes = Routes()
ADMIN = [needs(Role.ADMIN)]
SubscriberPathParam = Annotated[
    int, Path(ge=1, le=MAX_BIGINT, description="A subscriber's id.", examples=[1])
]
SuppressionPathParam = Annotated[
    int, Path(ge=1, le=MAX_BIGINT, description="A suppression's id.", examples=[1])
]
ListSlug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Address = Annotated[str, Field(min_length=1, max_length=MAX_LENGTH)]
Before = Annotated[int | None, Query(ge=1, le=MAX_BIGINT, description="Show older than this id.")]
Limit = Annotated[int, Query(ge=1, le=search.MAX_PAGE)]


class SubscriberRow(Out):
    id: int
    email: str
    name: str
    created_at: UtcTime
    suppressed: bool


class SubscriberPage(BaseModel):
    rows: list[SubscriberRow]
    next_before: int | None = Field(description="`before` for the next page; null on the last.")


class SubscriptionOut(BaseModel):
    list_slug: str
    status: SubscriptionStatus
    topics: list[str]
    created_at: UtcTime
    confirmed_at: UtcTime | None
    unsubscribed_at: UtcTime | None


class SuppressionOut(Out):
    id: int
    email: str = Field(description="The address, or `sha256:...` for an erased person.")
    reason: SuppressionReason
    detail: str
    created_at: UtcTime


class SubscriberOut(BaseModel):
    id: int
    email: str
    name: str
    language: str | None
    timezone: str | None
    created_at: UtcTime
    subscriptions: list[SubscriptionOut]
    suppression: SuppressionOut | None


class NewSubscriber(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Address
    name: str = Field(default="", max_length=1000)
    lists: list[ListSlug] = Field(min_length=1, max_length=manage.MAX_LISTS)
    consent_recorded: bool = Field(
        description="The person's consent was recorded: subscribed confirmed. Otherwise "
        "pending, and a confirmation mail is sent."
    )


class ListChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: SubscriptionStatus | None = Field(
        default=None, description="pending -> confirmed, or pending/confirmed -> unsubscribed."
    )
    topics: list[Annotated[str, Field(max_length=100)]] | None = Field(
        default=None, max_length=100, description="Topic slugs of the list; [] for everything."
    )


class SubscriberEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=1000)
    language: str | None = Field(default=None, max_length=35, description="'' for the list's.")
    timezone: str | None = Field(default=None, max_length=64, description="'' for the list's.")
    lists: dict[ListSlug, ListChange] = Field(default_factory=dict, max_length=100)


class Unsubscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    list: ListSlug | None = Field(default=None, description="The list's slug; null for all.")


class Unsubscribed(BaseModel):
    stopped: list[str] = Field(description="The lists whose subscription stopped now.")
    subscriber: SubscriberOut


class ErasedOut(BaseModel):
    subscriptions: int
    events: int
    deliveries: int
    delivery_events: int
    signup_requests: int
    message: str


class SuppressionPageOut(BaseModel):
    rows: list[SuppressionOut]
    next_before: int | None


class NewSuppression(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Address
    detail: str = Field(default="", max_length=2000)


def subscriber_out(session: Session, subscriber_id: int) -> SubscriberOut:
    record = search.record(session, subscriber_id, recent=0)
    s = record.subscriber
    subs = []
    topics_by_list = topics_of_lists(session, [lst.id for _, lst in record.subscriptions])
    for sub, lst in record.subscriptions:
        slugs = {t.id: t.slug for t in topics_by_list[lst.id]}
        topics = [slugs.get(i, str(i)) for i in parse_topic_ids(sub.topic_ids)]
        subs.append(
            SubscriptionOut(
                list_slug=lst.slug,
                status=sub.status,
                topics=topics,
                created_at=sub.created_at,
                confirmed_at=sub.confirmed_at,
                unsubscribed_at=sub.unsubscribed_at,
            )
        )
    supp = SuppressionOut.model_validate(record.suppression) if record.suppression else None
    return SubscriberOut(
        id=s.id,
        email=s.email,
        name=s.name,
        language=s.language,
        timezone=s.timezone,
        created_at=s.created_at,
        subscriptions=subs,
        suppression=supp,
    )


@routes.get("/subscribers", response_model=SubscriberPage, dependencies=ADMIN)
def find_subscribers(
    session: SessionDep,
    q: SearchText = "",
    list_slug: SlugQuery = None,
    status: SubscriptionStatus | None = None,
    suppressed: search.Suppressed = search.Suppressed.ANY,
    before: Before = None,
    limit: Limit = search.PAGE,
) -> SubscriberPage:
    """Search by part of an address or a name, newest first, a keyset page at a time."""
    list_id = get_list(session, list_slug).id if list_slug else None
    query = search.Query(q, list_id, status, suppressed, before, limit)
    found = search.search(session, query)
    rows = [SubscriberRow.model_validate(r) for r in found.rows]
    return SubscriberPage(rows=rows, next_before=found.next_before)


@routes.post(
    "/subscribers",
    response_model=SubscriberOut,
    status_code=201,
    dependencies=ADMIN,
)
def add_subscriber(request: Request, session: SessionDep, body: NewSubscriber) -> SubscriberOut:
    """Subscribe an address by hand to one or more lists (checked as a sign-up's is)."""
    list_ids = [get_list(session, slug).id for slug in body.lists]
    added = manage.add_by_hand(
        session, body.email, list_ids, name=body.name, consent_recorded=body.consent_recorded
    )
    request.state.audit_target = ("subscriber", added.subscriber_id)
    request.state.audit_detail = {
        "lists": sorted(body.lists),
        "consent_recorded": body.consent_recorded,
    }
    return subscriber_out(session, added.subscriber_id)


EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The subscribers, streamed: CSV with a header row, or a JSON array.",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    }
}


def stream(
    sf: sessionmaker[Session], selection: export.Selection, fmt: export.Format
) -> Iterator[str]:
    """The chunks, read in a session of their own: the request's is closed by then."""
    with sf() as session:
        yield from export.chunks(session, selection, fmt)


def export_response(
    request: Request, selection: export.Selection, fmt: export.Format, name: str
) -> StreamingResponse:
    filename = f"{name}.{fmt.value}"
    return StreamingResponse(
        stream(request.app.state.sessionmaker, selection, fmt),
        media_type=export.MEDIA_TYPES[fmt],
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


@routes.get(
    "/exports/subscribers",
    response_class=StreamingResponse,
    responses=EXPORT_RESPONSES,
    dependencies=ADMIN,
)
def export_subscribers(
    request: Request,
    session: SessionDep,
    format: export.Format = export.Format.CSV,
    q: SearchText = "",
    list_slug: SlugQuery = None,
    status: SubscriptionStatus | None = None,
    suppressed: search.Suppressed = search.Suppressed.ANY,
) -> Response:
    """A list's subscribers (with their status there) or a search's, as CSV or JSON. (Not
    under /subscribers/, where a word would be taken for a subscriber's id.)"""
    lst = get_list(session, list_slug) if list_slug else None
    selection = export.Selection(lst.id if lst else None, status, q, suppressed)
    return export_response(request, selection, format, lst.slug if lst else "subscribers")


@routes.get("/subscribers/{subscriber_id}", response_model=SubscriberOut, dependencies=ADMIN)
def get_subscriber(session: SessionDep, subscriber_id: SubscriberPathParam) -> SubscriberOut:
    return subscriber_out(session, subscriber_id)


@routes.patch("/subscribers/{subscriber_id}", response_model=SubscriberOut, dependencies=ADMIN)
def edit_subscriber(
    request: Request, session: SessionDep, subscriber_id: SubscriberPathParam, body: SubscriberEdit
) -> SubscriberOut:
    """Name, language, time zone; per list, the status and the topics."""
    ids = {slug: get_list(session, slug).id for slug in body.lists}
    changed = manage.edit(
        session,
        subscriber_id,
        name=body.name,
        language=body.language,
        timezone=body.timezone,
        topics={ids[s]: c.topics for s, c in body.lists.items() if c.topics is not None},
        statuses={ids[s]: c.status for s, c in body.lists.items() if c.status is not None},
    )
    request.state.audit_detail = {"changed": changed}
    return subscriber_out(session, subscriber_id)


@routes.post(
    "/subscribers/{subscriber_id}/unsubscribe", response_model=Unsubscribed, dependencies=ADMIN
)
def unsubscribe(
    request: Request, session: SessionDep, subscriber_id: SubscriberPathParam, body: Unsubscribe
) -> Unsubscribed:
    """Stop mail from one list, or from all (recorded as the subscriber's event, via admin)."""
    list_id = get_list(session, body.list).id if body.list else None
    stopped = manage.unsubscribe(session, subscriber_id, list_id)
    out = subscriber_out(session, subscriber_id)
    slugs = {get_list(session, i).slug for i in stopped}
    request.state.audit_detail = {"lists": sorted(slugs)}
    return Unsubscribed(stopped=sorted(slugs), subscriber=out)


@routes.get(
    "/subscribers/{subscriber_id}/data",
    dependencies=ADMIN,
    responses={200: {"description": "Everything stored about the person (GDPR), a download."}},
)
def person_data(session: SessionDep, subscriber_id: SubscriberPathParam) -> JSONResponse:
    data = gdpr.person_data(session, subscriber_id)
    headers = {"content-disposition": f'attachment; filename="subscriber-{subscriber_id}.json"'}
    return JSONResponse(data, headers=headers)


@routes.delete("/subscribers/{subscriber_id}", response_model=ErasedOut, dependencies=ADMIN)
def erase(request: Request, session: SessionDep, subscriber_id: SubscriberPathParam) -> ErasedOut:
    """Erase the person (GDPR): every row about them goes; their address stays only as a
    hashed suppression, so nothing mails them again. Their deliveries' counts stay in the
    issues' totals."""
    done = gdpr.erase(session, subscriber_id)
    request.state.audit_detail = {"erased": True, "deliveries": done.deliveries}
    return ErasedOut(
        subscriptions=done.subscriptions,
        events=done.events,
        deliveries=done.deliveries,
        delivery_events=done.delivery_events,
        signup_requests=done.signup_requests,
        message=f"subscriber {subscriber_id} erased; a hashed suppression is kept",
    )


SHOWN_REJECTED = 1000
SPOOL_IN_MEMORY = 1 << 20  # bytes of a body kept in memory before the spool goes to disk


class Rejected(BaseModel):
    line: int
    reason: str


class ImportOut(BaseModel):
    added: int
    updated: int
    unchanged: int
    asked: int = Field(description="New subscriptions sent a confirmation mail.")
    rejected: int
    rejected_rows: list[Rejected] = Field(description=f"The first {SHOWN_REJECTED}, by line.")


CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "A CSV file with an `email` column (`name` and others optional), UTF-8.",
    }
}


@routes.post(
    "/lists/{slug}/subscribers/import",
    response_model=ImportOut,
    dependencies=ADMIN,
    openapi_extra=CSV_BODY,
)
async def import_subscribers(
    request: Request,
    session: SessionDep,
    slug: Slug,
    consent_recorded: Annotated[
        bool,
        Query(
            description="Each row's consent was recorded: subscribed confirmed. Otherwise "
            "pending, and each new row is sent a confirmation mail."
        ),
    ] = False,
) -> ImportOut:
    """Import a CSV sent as the body, streamed to a spool file and read row by row (COPY and
    a set-based merge on PostgreSQL); rejected rows come back by line and reason."""
    lst = await run_in_threadpool(get_list, session, slug)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        # Past SPOOL_IN_MEMORY the spool writes to disk: off the event loop, a megabyte at a
        # time, so a large upload does not stall every other request.
        pending: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= SPOOL_IN_MEMORY:
                await run_in_threadpool(spool.writelines, pending)
                pending, size = [], 0
        await run_in_threadpool(spool.writelines, pending)
        spool.seek(0)
        stream = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
        try:
            result = await run_in_threadpool(
                import_rows, session, lst.id, stream, consent_recorded=consent_recorded
            )
        except UnicodeDecodeError:
            raise DigestError("the body is not UTF-8 text") from None
    request.state.audit_detail = {
        "added": result.added,
        "updated": result.updated,
        "rejected": len(result.errors),
        "consent_recorded": consent_recorded,
    }
    return ImportOut(
        added=result.added,
        updated=result.updated,
        unchanged=result.unchanged,
        asked=result.asked,
        rejected=len(result.errors),
        rejected_rows=[Rejected(line=n, reason=r) for n, r in result.errors[:SHOWN_REJECTED]],
    )


@routes.get("/suppressions", response_model=SuppressionPageOut, dependencies=ADMIN)
def suppressions(
    session: SessionDep,
    q: SearchText = "",
    reason: SuppressionReason | None = None,
    before: Before = None,
    limit: Limit = suppression.PAGE,
) -> SuppressionPageOut:
    """The suppression list, newest first, a keyset page at a time."""
    found = suppression.page(session, text=q, reason=reason, before_id=before, limit=limit)
    rows = [SuppressionOut.model_validate(r) for r in found.rows]
    return SuppressionPageOut(rows=rows, next_before=found.next_before)


@routes.post(
    "/suppressions",
    response_model=SuppressionOut,
    dependencies=ADMIN,
    responses={201: {"model": SuppressionOut, "description": "Suppressed now."}},
)
def add_suppression(
    request: Request, session: SessionDep, body: NewSuppression, response: Response
) -> SuppressionOut:
    """Suppress an address by hand (reason "manual"); 201 when it is new, 200 when it was
    suppressed already (the existing entry)."""
    found, added = suppression.add_manual(session, body.email, body.detail)
    if added:
        response.status_code = 201
    request.state.audit_target = ("suppression", found.id)
    request.state.audit_detail = {"added": added}
    return SuppressionOut.model_validate(found)


@routes.delete("/suppressions/{suppression_id}", status_code=204, dependencies=ADMIN)
def lift_suppression(
    request: Request, session: SessionDep, suppression_id: SuppressionPathParam
) -> Response:
    """Lift a suppression: mail may go to the address again."""
    lifted = suppression.lift(session, suppression_id)
    request.state.audit_target = ("suppression", suppression_id)
    request.state.audit_detail = {"reason": str(lifted.reason)}
    return Response(status_code=204)

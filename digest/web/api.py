"""The JSON API under /api/v1: what the editor's pages do, for scripts and other front ends.

Auth, roles and CSRF as in `digest.web.auth`: a user's API token (`Authorization: Bearer
dgt_...`) or a signed-in browser session, each route with the least role it needs (viewer <
editor < publisher < admin); a session needs an `X-Requested-With` header on every request
that changes something. Every change is in the audit log. Every error is JSON
`{"detail": "..."}`: 400 for a request the issue's state or the input cannot honour, 401
without a user, 403 for a role too low, 404 for what does not exist, 422 for a malformed body,
path or query (with `errors`), and the app's own 404, 405 and 500 under /api/v1 too.
Ids are 1 to 2**63-1. Times are UTC, ISO 8601 with "Z". The OpenAPI document is
/api/v1/openapi.json, for a signed-in user.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, computed_field
from sqlalchemy.orm import Session

from digest import overview
from digest.config import Settings
from digest.db import MAX_INT
from digest.delivery.ledger import issue_progress
from digest.delivery.report import Kind, issue_report, report_page
from digest.errors import NotFound
from digest.issues import items as issue_items
from digest.issues import lifecycle
from digest.issues.compose import compose_issue
from digest.issues.preview import personalise_for_preview, render_preview
from digest.issues.schedule import parse_local_time, schedule_send, unschedule_send
from digest.models import (
    FeedbackAction,
    FeedbackVia,
    FetchOutcome,
    Grouping,
    IssueStatus,
    OptIn,
    Role,
    SourceKind,
    Verdict,
)
from digest.pipeline import approve_issue
from digest.sources.history import recent_fetches
from digest.sources.listing import Selectors
from digest.sources.reader import ReadResult
from digest.sources.registry import (
    INTERVAL_MAX,
    INTERVAL_MIN,
    add_read_source,
    get_source,
    selectors_from,
    source_topics,
    try_source,
    update_source,
)
from digest.subscribers import feedback
from digest.subscribers.list_settings import InvalidSettings, ListSettings, describe_schedule
from digest.subscribers.lists import (
    create_list_with,
    get_list,
    link_source,
    set_postal_address,
    unlink_source,
    update_list,
)
from digest.subscribers.topics import define_topic, delete_topic, list_topics
from digest.web import dispatch
from digest.web.api_base import ApiRoute, Out, UtcTime
from digest.web.api_subscribers import routes as subscriber_routes
from digest.web.auth import API_HEADER, AuditDep, current_user, needs, require_api_header
from digest.web.collecting import fetch_now
from digest.web.deps import SessionDep, SettingsDep
from digest.web.params import (
    AfterKey,
    IssueId,
    ItemId,
    Offset,
    Position,
    Slug,
    SlugQuery,
    SourceId,
)
from digest.web.templating import root_path

SlugBody = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
TopicSlug = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class ErrorOut(BaseModel):
    detail: str


class InvalidOut(ErrorOut):
    errors: list[dict[str, Any]]


def _error(description: str, model: type[BaseModel] = ErrorOut) -> dict[str, Any]:
    return {"model": model, "description": description}


# Every route may answer these (documented so that clients and schemathesis know them).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The issue's state or the input cannot be honoured"),
    401: _error("Sign in: send a user's API token (Authorization: Bearer ...)"),
    403: _error(f"The user's role may not do this, or a change without the {API_HEADER} header"),
    404: _error("No such issue, item or list"),
    422: _error("A malformed body, path or query", InvalidOut),
    429: _error("Too many failed sign-ins: wait the Retry-After seconds"),
}

router = APIRouter(
    prefix="/api/v1",
    route_class=ApiRoute,
    dependencies=[Depends(current_user), Depends(require_api_header), AuditDep],
    responses=ERROR_RESPONSES,
)


@router.get("/openapi.json", include_in_schema=False, dependencies=[needs(Role.VIEWER)])
def openapi(request: Request) -> JSONResponse:
    """This API's OpenAPI document, for a signed-in user only: there are no public docs."""
    state = request.app.state
    schema = getattr(state, "api_schema", None)
    if schema is None:
        schema = state.api_schema = get_openapi(
            title="digest API",
            version="1",
            description=__doc__,
            routes=router.routes,
            servers=[{"url": root_path(request) or "/"}],
        )
    return JSONResponse(schema)


class Progress(Out):
    """`digest.delivery.ledger.Progress` on the wire."""

    pending: int
    sending: int
    sent: int
    failed: int
    skipped: int = 0  # unsubscribed or suppressed after planning

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        return self.pending + self.sending + self.sent + self.failed + self.skipped


class IssueSummary(Out):
    id: int
    list_slug: str
    list_name: str
    number: int
    status: IssueStatus
    subject: str
    items: int
    created_at: UtcTime
    approved_at: UtcTime | None
    sent_at: UtcTime | None
    progress: Progress
    send_at: UtcTime | None = Field(
        default=None, description="An approved issue's scheduled send (UTC), or null."
    )
    timezone: str = Field(default="UTC", description="Its list's time zone.")


class IssueItemOut(Out):
    item_id: int
    position: int
    group: str
    title: str
    url: str | None
    source: str
    published_at: UtcTime | None
    summary: str = ""
    edited: bool = False


class ItemEdit(BaseModel):
    """This issue's own title and summary of an item (plain text)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=2000)
    summary: str = Field(default="", max_length=20_000)


class ItemAdd(BaseModel):
    """An item added by hand: an http(s) link, a title, a plain-text summary, a group."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=2000)
    url: str = Field(max_length=4000)
    summary: str = Field(default="", max_length=20_000)
    group: str = Field(default="", max_length=1000)


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    send_at: str = Field(
        max_length=40,
        description="A wall-clock time in the list's time zone, no offset: 2026-03-29T09:30",
        examples=["2026-03-29T09:30"],
    )


class ReportRowOut(Out):
    key: int
    email: str
    at: UtcTime | None
    detail: str


class ReportOut(BaseModel):
    issue_id: int
    progress: Progress
    counts: dict[str, int]
    first_sent_at: UtcTime | None


class ReportPageOut(BaseModel):
    kind: str
    rows: list[ReportRowOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null: last.")


class IssueDetail(IssueSummary):
    preheader: str
    intro: str
    period_start: UtcTime | None
    period_end: UtcTime
    warnings: list[str]
    issue_items: list[IssueItemOut]


class IssueEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str | None = Field(default=None, max_length=500)
    preheader: str | None = Field(default=None, max_length=500)
    intro: str | None = Field(default=None, max_length=20_000)


class Move(BaseModel):
    model_config = ConfigDict(extra="forbid")
    position: Position


class ProofRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    addresses: list[Annotated[str, Field(max_length=320)]] = Field(min_length=1, max_length=20)


class ProofOutcome(Out):
    email: str
    outcome: str
    detail: str


class Preview(BaseModel):
    html: str
    text: str
    warnings: list[str]
    html_bytes: int


class Approval(BaseModel):
    issue: IssueDetail
    warnings: list[str]
    html_bytes: int


class Sending(BaseModel):
    issue_id: int
    planned: int
    mode: dispatch.Mode
    message: str


class ListOut(Out):
    id: int
    slug: str
    name: str
    description: str
    subscribers: dict[str, int]
    sources: int
    last_issue: IssueSummary | None
    draft_issue_id: int | None
    postal_address: str


class PostalAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    postal_address: str = Field(max_length=2000)


class Composed(BaseModel):
    created: bool
    issue: IssueDetail | None
    message: str


class SourceOut(Out):
    id: int
    name: str
    url: str
    kind: SourceKind
    health: overview.Health
    lists: list[str]
    items: int
    last_fetched_at: UtcTime | None
    last_success_at: UtcTime | None
    last_error: str | None
    consecutive_failures: int
    next_fetch_at: UtcTime | None


class OverdueOut(Out):
    """A scheduled issue still without its issue (state: its ScheduledState), or an approved
    issue whose scheduled send has not started (state "send", issue_id set)."""

    id: int
    list_slug: str
    list_name: str
    fire_at: UtcTime
    state: str
    attempts: int
    error: str
    next_attempt_at: UtcTime | None
    issue_id: int | None = None


def issue_detail(session: Session, issue_id: int) -> IssueDetail:
    issue = lifecycle.get_issue(session, issue_id)
    row = overview.issue_row(session, issue)
    return IssueDetail.model_validate(
        {
            **asdict(row),
            "preheader": issue.preheader,
            "intro": issue.intro,
            "period_start": issue.period_start,
            "period_end": issue.period_end,
            "warnings": list(issue.render_warnings or ()),
            "issue_items": [
                IssueItemOut.model_validate(i) for i in overview.issue_items(session, issue_id)
            ],
        }
    )


def _sending(result: dispatch.Dispatch) -> Sending:
    where = "the workers" if result.mode == "workers" else "this server process"
    return Sending(
        issue_id=result.issue_id,
        planned=result.planned,
        mode=result.mode,
        message=f"issue {result.issue_id} is being sent by {where}",
    )


@router.get("/issues", response_model=list[IssueSummary], dependencies=[needs(Role.VIEWER)])
def list_issues(
    session: SessionDep,
    list_slug: SlugQuery = None,
    status: IssueStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[IssueSummary]:
    list_id = get_list(session, list_slug).id if list_slug else None
    rows = overview.issue_rows(session, list_id=list_id, status=status, limit=limit, offset=offset)
    return [IssueSummary.model_validate(r) for r in rows]


class DeliveryEventOut(Out):
    id: int
    verdict: Verdict
    action: FeedbackAction
    via: FeedbackVia
    matched: bool
    delivery_id: int | None
    issue_id: int | None
    subscriber_id: int | None
    email: str
    status: str
    detail: str
    created_at: UtcTime


@router.get("/events", response_model=list[DeliveryEventOut], dependencies=[needs(Role.VIEWER)])
def delivery_events(
    session: SessionDep,
    issue: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    unmatched: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryEventOut]:
    """Bounces, complaints, blocks, unsubscribes by mail and relay refusals, newest first:
    of an issue, of an address, or those that named no delivery of ours."""
    rows = feedback.list_events(
        session, issue_id=issue, email=email, unmatched=unmatched, limit=limit
    )
    return [DeliveryEventOut.model_validate(r) for r in rows]


@router.get("/issues/{issue_id}", response_model=IssueDetail, dependencies=[needs(Role.VIEWER)])
def get_issue(session: SessionDep, issue_id: IssueId) -> IssueDetail:
    return issue_detail(session, issue_id)


@router.patch("/issues/{issue_id}", response_model=IssueDetail, dependencies=[needs(Role.EDITOR)])
def edit_issue(session: SessionDep, issue_id: IssueId, edit: IssueEdit) -> IssueDetail:
    lifecycle.edit_draft(
        session, issue_id, intro=edit.intro, subject=edit.subject, preheader=edit.preheader
    )
    return issue_detail(session, issue_id)


@router.delete("/issues/{issue_id}", status_code=204, dependencies=[needs(Role.EDITOR)])
def discard_issue(session: SessionDep, issue_id: IssueId) -> Response:
    lifecycle.discard_draft(session, issue_id)
    return Response(status_code=204)


@router.post(
    "/issues/{issue_id}/items/{item_id}/move",
    response_model=IssueDetail,
    dependencies=[needs(Role.EDITOR)],
)
def move_item(session: SessionDep, issue_id: IssueId, item_id: ItemId, move: Move) -> IssueDetail:
    lifecycle.move_item(session, issue_id, item_id, move.position)
    return issue_detail(session, issue_id)


@router.delete(
    "/issues/{issue_id}/items/{item_id}",
    response_model=IssueDetail,
    dependencies=[needs(Role.EDITOR)],
)
def drop_item(session: SessionDep, issue_id: IssueId, item_id: ItemId) -> IssueDetail:
    lifecycle.drop_item(session, issue_id, item_id)
    return issue_detail(session, issue_id)


@router.get("/issues/{issue_id}/preview", response_model=Preview, dependencies=[needs(Role.VIEWER)])
def preview(session: SessionDep, settings: SettingsDep, issue_id: IssueId) -> Preview:
    """What a subscriber sees, with a sample reader's name and links."""
    rendered = render_preview(session, issue_id, settings)
    html = personalise_for_preview(rendered.html, rendered.slots)
    return Preview(
        html=html,
        text=personalise_for_preview(rendered.text, rendered.slots),
        warnings=list(rendered.warnings),
        html_bytes=len(rendered.html.encode()),
    )


@router.get(
    "/issues/{issue_id}/progress", response_model=Progress, dependencies=[needs(Role.VIEWER)]
)
def progress(session: SessionDep, issue_id: IssueId) -> Progress:
    lifecycle.get_issue(session, issue_id)
    return Progress.model_validate(issue_progress(session, issue_id))


@router.post(
    "/issues/{issue_id}/proof", response_model=list[ProofOutcome], dependencies=[needs(Role.EDITOR)]
)
def proof(
    session: SessionDep, settings: SettingsDep, issue_id: IssueId, body: ProofRequest
) -> list[ProofOutcome]:
    """Send a proof copy (drafts too) to up to 20 addresses; no ledger is touched."""
    from digest.delivery.transport_factory import open_transport
    from digest.issues.proof import send_proof

    with open_transport(settings) as transport:
        results = send_proof(session, issue_id, body.addresses, transport, settings)
    return [ProofOutcome.model_validate(r) for r in results]


@router.post(
    "/issues/{issue_id}/approve", response_model=Approval, dependencies=[needs(Role.PUBLISHER)]
)
def approve(session: SessionDep, settings: SettingsDep, issue_id: IssueId) -> Approval:
    """Draft -> approved: rendered once and frozen for sending."""
    result = approve_issue(session, issue_id, settings)
    return Approval(
        issue=issue_detail(session, issue_id),
        warnings=list(result.warnings),
        html_bytes=result.html_bytes,
    )


@router.post(
    "/issues/{issue_id}/send",
    response_model=Sending,
    status_code=202,
    dependencies=[needs(Role.PUBLISHER)],
)
def send(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    issue_id: IssueId,
) -> Sending:
    """Approved -> sending: one delivery per confirmed subscriber, then sent by the workers
    (with a broker) or by this server process after the response (without one)."""
    sf = request.app.state.sessionmaker
    return _sending(dispatch.send(session, issue_id, settings, background, sf))


@router.post(
    "/issues/{issue_id}/pause", response_model=IssueDetail, dependencies=[needs(Role.PUBLISHER)]
)
def pause(session: SessionDep, issue_id: IssueId) -> IssueDetail:
    lifecycle.pause(session, issue_id)
    return issue_detail(session, issue_id)


@router.post(
    "/issues/{issue_id}/resume",
    response_model=Sending,
    status_code=202,
    dependencies=[needs(Role.PUBLISHER)],
)
def resume(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    issue_id: IssueId,
) -> Sending:
    sf = request.app.state.sessionmaker
    return _sending(dispatch.resume(session, issue_id, settings, background, sf))


@router.post(
    "/issues/{issue_id}/to-draft", response_model=IssueDetail, dependencies=[needs(Role.PUBLISHER)]
)
def to_draft(session: SessionDep, issue_id: IssueId) -> IssueDetail:
    """Return an approved issue to draft; what approval froze is thrown away."""
    lifecycle.return_to_draft(session, issue_id)
    return issue_detail(session, issue_id)


@router.post(
    "/issues/{issue_id}/cancel", response_model=IssueDetail, dependencies=[needs(Role.PUBLISHER)]
)
def cancel(session: SessionDep, issue_id: IssueId) -> IssueDetail:
    lifecycle.cancel(session, issue_id)
    return issue_detail(session, issue_id)


@router.patch(
    "/issues/{issue_id}/items/{item_id}",
    response_model=IssueDetail,
    dependencies=[needs(Role.EDITOR)],
)
def edit_item(
    session: SessionDep, issue_id: IssueId, item_id: ItemId, body: ItemEdit
) -> IssueDetail:
    """A draft's item with this issue's own title and summary (plain text)."""
    issue_items.edit_item(session, issue_id, item_id, title=body.title, summary=body.summary)
    return issue_detail(session, issue_id)


@router.post(
    "/issues/{issue_id}/items",
    response_model=IssueDetail,
    status_code=201,
    dependencies=[needs(Role.EDITOR)],
)
def add_item(
    request: Request, session: SessionDep, issue_id: IssueId, body: ItemAdd
) -> IssueDetail:
    """Add an item by hand to a draft (normalised as collected items are)."""
    added = issue_items.add_item(
        session, issue_id, title=body.title, url=body.url, summary=body.summary, group=body.group
    )
    request.state.audit_detail = {"item_id": added.item_id}
    return issue_detail(session, issue_id)


@router.put(
    "/issues/{issue_id}/schedule", response_model=IssueDetail, dependencies=[needs(Role.PUBLISHER)]
)
def put_schedule(
    request: Request, session: SessionDep, issue_id: IssueId, body: ScheduleRequest
) -> IssueDetail:
    """Send an approved issue at a wall-clock time of its list's time zone: refused in the
    past, in a DST gap (a time that does not exist) or fold (one that happens twice)."""
    issue = schedule_send(session, issue_id, parse_local_time(body.send_at))
    request.state.audit_detail = {"send_at": f"{issue.send_at:%Y-%m-%dT%H:%M:%SZ}"}
    return issue_detail(session, issue_id)


@router.delete(
    "/issues/{issue_id}/schedule", response_model=IssueDetail, dependencies=[needs(Role.PUBLISHER)]
)
def delete_schedule(session: SessionDep, issue_id: IssueId) -> IssueDetail:
    unschedule_send(session, issue_id)
    return issue_detail(session, issue_id)


@router.post(
    "/issues/{issue_id}/send-rest",
    response_model=Sending,
    status_code=202,
    dependencies=[needs(Role.PUBLISHER)],
)
def send_rest(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    issue_id: IssueId,
) -> Sending:
    """A sent issue, the same frozen message, to the confirmed subscribers who have no
    delivery of it (who joined later); failed deliveries are not tried again."""
    sf = request.app.state.sessionmaker
    return _sending(dispatch.send_rest(session, issue_id, settings, background, sf))


@router.get(
    "/issues/{issue_id}/report", response_model=ReportOut, dependencies=[needs(Role.VIEWER)]
)
def get_report(session: SessionDep, issue_id: IssueId) -> ReportOut:
    """The delivery report's counts: the ledger by status, bounces, complaints and
    unsubscribes after it, who joined later and who has no copy."""
    found = issue_report(session, lifecycle.get_issue(session, issue_id))
    return ReportOut(
        issue_id=found.issue_id,
        progress=Progress.model_validate(found.progress),
        counts=found.counts,
        first_sent_at=found.first_sent_at,
    )


@router.get(
    "/issues/{issue_id}/report/{kind}",
    response_model=ReportPageOut,
    dependencies=[needs(Role.VIEWER)],
)
def get_report_page(
    session: SessionDep,
    issue_id: IssueId,
    kind: Kind,
    after: AfterKey = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    q: Annotated[str, Query(max_length=320)] = "",
) -> ReportPageOut:
    """One page of a kind of recipient, by key (keyset: pass `next_after` as `after`),
    narrowed to addresses containing `q`."""
    found = report_page(
        session, lifecycle.get_issue(session, issue_id), kind, after=after, limit=limit, search=q
    )
    return ReportPageOut(
        kind=found.kind,
        rows=[ReportRowOut.model_validate(r) for r in found.rows],
        next_after=found.next_after,
    )


@router.get("/lists", response_model=list[ListOut], dependencies=[needs(Role.VIEWER)])
def lists(session: SessionDep) -> list[ListOut]:
    return [ListOut.model_validate(row) for row in overview.list_rows(session)]


@router.put(
    "/lists/{slug}/postal-address",
    response_model=PostalAddress,
    dependencies=[needs(Role.ADMIN)],
)
def put_postal_address(session: SessionDep, slug: Slug, body: PostalAddress) -> PostalAddress:
    """The postal address every issue of the list shows in its footer (empty: none, and
    approval warns)."""
    lst = set_postal_address(session, slug, body.postal_address)
    return PostalAddress(postal_address=lst.postal_address)


@router.post(
    "/lists/{slug}/compose",
    response_model=Composed,
    dependencies=[needs(Role.EDITOR)],
    responses={201: {"model": Composed, "description": "A new draft was made."}},
)
def compose(session: SessionDep, slug: Slug, response: Response) -> Composed:
    """Create the list's next draft from what is new; 201 with it, or 200 when nothing is new."""
    issue = compose_issue(session, slug)
    if issue is None:
        return Composed(created=False, issue=None, message=f"nothing new for {slug}")
    response.status_code = 201
    detail = issue_detail(session, issue.id)
    return Composed(
        created=True, issue=detail, message=f"issue #{issue.number} with {detail.items} items"
    )


@router.get("/sources", response_model=list[SourceOut], dependencies=[needs(Role.VIEWER)])
def sources(session: SessionDep) -> list[SourceOut]:
    return [SourceOut.model_validate(row) for row in overview.source_rows(session)]


# Lists and sources, for admins (anyone signed in reads). The same services as the editor's
# pages and the CLI: digest.subscribers.lists, digest.sources.registry, web.collecting.


class TopicOut(Out):
    id: int
    slug: str
    name: str
    source_ids: list[int]
    categories: list[str]
    keywords: list[str]


class ListDetail(ListOut):
    from_name: str | None
    from_email: str | None
    reply_to: str | None
    language: str
    timezone: str
    schedule: str
    schedule_cron: str
    send_local_time: str | None
    opt_in: OptIn
    grouping: Grouping
    subject_template: str
    preheader_template: str
    lookback_days: int
    max_items: int
    auto_approve: bool
    private: bool
    editions: list[str]
    source_ids: list[int]
    topics: list[TopicOut]


Text1k = Annotated[str, Field(max_length=1000)]
Id = Annotated[int, Field(ge=1, le=MAX_INT)]


class ListSettingsIn(BaseModel):
    """Settings to set; a field left out is kept ("" clears an optional text)."""

    model_config = ConfigDict(extra="forbid")
    name: Text1k | None = None
    description: Annotated[str, Field(max_length=20_000)] | None = None
    from_name: Text1k | None = None
    from_email: Text1k | None = None
    reply_to: Text1k | None = None
    postal_address: Annotated[str, Field(max_length=2000)] | None = None
    language: Annotated[str, Field(max_length=100)] | None = None
    timezone: Annotated[str, Field(max_length=100)] | None = Field(
        default=None, description="An IANA zone: Europe/Paris."
    )
    schedule: Annotated[str, Field(max_length=200)] | None = Field(
        default=None,
        description="monthly 1 09:00, weekly mon 09:00, daily 09:00 or a cron expression, "
        "in the list's time zone.",
    )
    send_local_time: Annotated[str, Field(max_length=20)] | None = Field(
        default=None, description="HH:MM in each reader's time zone; '' at once."
    )
    opt_in: OptIn | None = None
    grouping: Grouping | None = None
    subject_template: Text1k | None = None
    preheader_template: Text1k | None = None
    lookback_days: Annotated[int, Field(ge=1, le=3660)] | None = None
    max_items: Annotated[int, Field(ge=1, le=500)] | None = None
    auto_approve: bool | None = None
    private: bool | None = None
    editions: Annotated[list[Annotated[str, Field(max_length=16)]], Field(max_length=20)] | None = (
        None
    )

    def changes(self) -> dict[str, Any]:
        given = self.model_dump(exclude_none=True, exclude={"slug"})
        for key in ("opt_in", "grouping"):
            if key in given:
                given[key] = str(given[key])
        return given


class ListCreate(ListSettingsIn):
    slug: Annotated[str, Field(min_length=1, max_length=200)]
    name: Text1k


class TopicIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=200)] = ""
    source_ids: Annotated[list[Annotated[int, Field(ge=1, le=MAX_INT)]], Field(max_length=200)] = (
        Field(default_factory=list)
    )
    categories: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=100)] = (
        Field(default_factory=list)
    )
    keywords: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=100)] = Field(
        default_factory=list
    )


def _invalid(exc: InvalidSettings) -> RequestValidationError:
    """Refused settings as a 422 naming each field, as a malformed body is answered."""
    return RequestValidationError(
        [
            {"loc": ("body", name), "msg": why, "type": "value_error"}
            for name, why in exc.errors.items()
        ]
    )


def list_detail(session: Session, slug: str) -> ListDetail:
    lst = get_list(session, slug)
    (row,) = [r for r in overview.list_rows(session) if r.id == lst.id]
    return ListDetail.model_validate(
        {
            **asdict(row),
            "from_name": lst.from_name,
            "from_email": lst.from_email,
            "reply_to": lst.reply_to,
            "language": lst.language,
            "timezone": lst.timezone,
            "schedule": describe_schedule(lst.schedule_cron),
            "schedule_cron": lst.schedule_cron,
            "send_local_time": lst.send_local_time,
            "opt_in": lst.opt_in,
            "grouping": lst.grouping,
            "subject_template": lst.subject_template,
            "preheader_template": lst.preheader_template,
            "lookback_days": lst.lookback_days,
            "max_items": lst.max_items,
            "auto_approve": lst.auto_approve,
            "private": lst.private,
            "editions": list(lst.editions or ()),
            "source_ids": sorted(s.id for s in lst.sources),
            "topics": [TopicOut.model_validate(t) for t in list_topics(session, lst.id)],
        }
    )


@router.get("/lists/{slug}", response_model=ListDetail, dependencies=[needs(Role.VIEWER)])
def get_list_detail(session: SessionDep, slug: Slug) -> ListDetail:
    """A list with every setting, its sources and topics."""
    return list_detail(session, slug)


@router.post(
    "/lists",
    response_model=ListDetail,
    status_code=201,
    name="create_list",
    dependencies=[needs(Role.ADMIN)],
)
def create_list_op(request: Request, session: SessionDep, body: ListCreate) -> ListDetail:
    """Create a list; a refused setting is a 422 naming its field."""
    values = ListSettings().merged(body.changes())
    try:
        lst = create_list_with(session, body.slug, values)
    except InvalidSettings as exc:
        raise _invalid(exc) from None
    request.state.audit_target = ("list", lst.slug)
    return list_detail(session, lst.slug)


@router.patch("/lists/{slug}", response_model=ListDetail, dependencies=[needs(Role.ADMIN)])
def edit_list(
    request: Request, session: SessionDep, slug: Slug, body: ListSettingsIn
) -> ListDetail:
    """Change some settings (those given); all are checked, nothing changes when one is
    refused (422 naming it)."""
    try:
        lst, changed = update_list(session, slug, body.changes())
    except InvalidSettings as exc:
        raise _invalid(exc) from None
    request.state.audit_detail = {"changed": changed}
    return list_detail(session, lst.slug)


@router.put(
    "/lists/{slug}/sources/{source_id}",
    response_model=ListDetail,
    name="link_source",
    dependencies=[needs(Role.ADMIN)],
)
def link_list_source(session: SessionDep, slug: Slug, source_id: SourceId) -> ListDetail:
    """The source feeds the list (already linked: no change)."""
    link_source(session, get_list(session, slug).id, source_id)
    return list_detail(session, slug)


@router.delete(
    "/lists/{slug}/sources/{source_id}",
    response_model=ListDetail,
    name="unlink_source",
    dependencies=[needs(Role.ADMIN)],
)
def unlink_list_source(session: SessionDep, slug: Slug, source_id: SourceId) -> ListDetail:
    """The source no longer feeds the list; its topics forget it."""
    if not unlink_source(session, get_list(session, slug).id, source_id):
        raise NotFound(f"source {source_id} does not feed list {slug!r}")
    return list_detail(session, slug)


@router.put(
    "/lists/{slug}/topics/{topic_slug}",
    response_model=TopicOut,
    name="define_topic",
    dependencies=[needs(Role.ADMIN)],
)
def put_topic(session: SessionDep, slug: Slug, topic_slug: TopicSlug, body: TopicIn) -> TopicOut:
    """Define or redefine a topic of the list: its sources, feed categories or keywords."""
    lst = get_list(session, slug)
    topic = define_topic(
        session,
        lst,
        topic_slug,
        body.name.strip() or topic_slug,
        source_ids=body.source_ids,
        categories=body.categories,
        keywords=body.keywords,
    )
    return TopicOut.model_validate(topic)


@router.delete(
    "/lists/{slug}/topics/{topic_slug}",
    status_code=204,
    name="delete_topic",
    dependencies=[needs(Role.ADMIN)],
)
def remove_topic(session: SessionDep, slug: Slug, topic_slug: TopicSlug) -> Response:
    delete_topic(session, get_list(session, slug), topic_slug)
    return Response(status_code=204)


class SelectorsIn(BaseModel):
    """CSS selectors of a listing page (item is needed with the others)."""

    model_config = ConfigDict(extra="forbid")
    item: Annotated[str, Field(max_length=500)] | None = None
    title: Annotated[str, Field(max_length=500)] | None = None
    link: Annotated[str, Field(max_length=500)] | None = None
    date: Annotated[str, Field(max_length=500)] | None = None
    summary: Annotated[str, Field(max_length=500)] | None = None
    image: Annotated[str, Field(max_length=500)] | None = None
    next: Annotated[str, Field(max_length=500)] | None = None
    page_param: Annotated[str, Field(max_length=100)] | None = None
    date_order: Literal["MDY", "DMY"] | None = None
    max_pages: Annotated[int, Field(ge=1, le=50)] | None = None
    page_step: Annotated[int, Field(ge=1, le=1000)] | None = None
    siblings: bool | None = None

    def selectors(self) -> Selectors | None:
        return selectors_from(self.model_dump(exclude_none=True))


class SourceTry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(min_length=1, max_length=2000)]
    kind: Literal["auto", "feed", "html"] = "auto"
    selectors: SelectorsIn | None = None
    language: Annotated[str, Field(max_length=16)] = ""
    candidate: Annotated[int, Field(ge=1, le=50)] = 1

    def read(self, settings: Settings) -> ReadResult:
        return try_source(
            self.url,
            kind=self.kind,
            selectors=self.selectors.selectors() if self.selectors else None,
            language=self.language,
            candidate=self.candidate - 1,
            settings=settings,
        )


class SourceAdd(SourceTry):
    name: Annotated[str, Field(max_length=200)] = ""
    list_slug: SlugBody | None = Field(default=None, alias="list")
    interval: Annotated[int, Field(ge=INTERVAL_MIN, le=INTERVAL_MAX)] = 60


class TriedItem(BaseModel):
    title: str
    url: str | None
    published_at: UtcTime | None
    summary: str


class Candidate(BaseModel):
    selectors: dict[str, Any]
    items: int
    first_titles: list[str]


class Tried(BaseModel):
    """What the source yields now (the items the collector would take); nothing stored."""

    kind: str
    url: str
    feed_url: str | None
    title: str
    language: str | None
    selectors: dict[str, Any] | None
    selectors_inferred: bool
    pages: int
    warnings: list[str]
    items: list[TriedItem]
    candidates: list[Candidate]


def _tried(result: ReadResult) -> Tried:
    return Tried(
        kind=result.kind,
        url=result.url,
        feed_url=result.feed_url,
        title=result.title,
        language=result.language,
        selectors=result.selectors.to_dict() if result.selectors else None,
        selectors_inferred=bool(result.selectors and result.selectors.inferred),
        pages=result.pages,
        warnings=list(result.warnings),
        items=[
            TriedItem(
                title=i.title,
                url=i.url,
                published_at=i.published_at.astimezone(UTC) if i.published_at else None,
                summary=i.summary_text[:500],
            )
            for i in result.items[:200]
        ],
        candidates=[
            Candidate(
                selectors=s.to_dict(), items=len(found), first_titles=[i.title for i in found[:3]]
            )
            for s, found in result.candidates
        ],
    )


class FetchOut(Out):
    at: UtcTime
    outcome: FetchOutcome
    seen: int
    new: int
    updated: int
    error: str | None


class SourceDetail(SourceOut):
    enabled: bool
    language: str | None
    fetch_interval_minutes: int
    selectors: dict[str, Any]
    topic_ids: list[int]
    history: list[FetchOut]


class SourcePatch(BaseModel):
    """What to change; `selectors`: new ones, or {} to infer them at each fetch."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=200)] | None = None
    selectors: SelectorsIn | None = None
    language: Annotated[str, Field(max_length=16)] | None = None
    fetch_interval_minutes: Annotated[int, Field(ge=INTERVAL_MIN, le=INTERVAL_MAX)] | None = None
    enabled: bool | None = None
    topic_ids: (
        Annotated[list[Annotated[int, Field(ge=1, le=MAX_INT)]], Field(max_length=200)] | None
    ) = None


class Fetched(BaseModel):
    source_id: int
    mode: Literal["workers", "in-process"]
    ok: bool | None  # None: the workers have it
    seen: int
    new: int
    error: str | None


def source_detail(session: Session, source_id: int) -> SourceDetail:
    source = get_source(session, source_id)
    (row,) = overview.source_rows(session, source_id)
    return SourceDetail.model_validate(
        {
            **asdict(row),
            "selectors": dict(source.selectors or {}),
            "topic_ids": [t.id for t in source_topics(session, source_id)],
            "history": [FetchOut.model_validate(f) for f in recent_fetches(session, source_id)],
        }
    )


@router.post(
    "/sources/try", response_model=Tried, name="try_source", dependencies=[needs(Role.ADMIN)]
)
def try_source_op(settings: SettingsDep, body: SourceTry) -> Tried:
    """Read a feed or news page now and show the items it yields; nothing is stored. Only
    http(s), and the collector's address policy: private addresses are refused (400)."""
    return _tried(body.read(settings))


@router.post(
    "/sources",
    response_model=SourceDetail,
    status_code=201,
    name="add_source",
    dependencies=[needs(Role.ADMIN)],
)
def add_source_op(
    request: Request, session: SessionDep, settings: SettingsDep, body: SourceAdd
) -> SourceDetail:
    """Read the source once (as `try`), then store what that read found: the feed a page
    announces rather than the page, the selectors given or inferred; linked to `list`."""
    lst = get_list(session, body.list_slug) if body.list_slug else None
    source = add_read_source(
        session,
        body.url.strip(),
        body.read(settings),
        name=body.name,
        language=body.language,
        fetch_interval_minutes=body.interval,
    )
    if lst is not None:
        link_source(session, lst.id, source.id)
    request.state.audit_target = ("source", source.id)
    return source_detail(session, source.id)


@router.get(
    "/sources/{source_id:int}", response_model=SourceDetail, dependencies=[needs(Role.VIEWER)]
)
def get_source_detail(session: SessionDep, source_id: SourceId) -> SourceDetail:
    """A source with its health, settings, topics and latest fetches (newest first)."""
    return source_detail(session, source_id)


@router.patch(
    "/sources/{source_id:int}", response_model=SourceDetail, dependencies=[needs(Role.ADMIN)]
)
def edit_source(
    request: Request, session: SessionDep, source_id: SourceId, body: SourcePatch
) -> SourceDetail:
    selectors: Selectors | bool | None = False
    if "selectors" in body.model_fields_set:
        selectors = body.selectors.selectors() if body.selectors else None
    _source, changed = update_source(
        session,
        source_id,
        name=body.name,
        selectors=selectors,
        language=body.language,
        fetch_interval_minutes=body.fetch_interval_minutes,
        enabled=body.enabled,
        topic_ids=body.topic_ids,
    )
    request.state.audit_detail = {"changed": changed}
    return source_detail(session, source_id)


@router.post(
    "/sources/{source_id:int}/fetch",
    response_model=Fetched,
    dependencies=[needs(Role.ADMIN)],
    responses={202: {"model": Fetched, "description": "Queued for the workers."}},
)
def fetch_source(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    source_id: SourceId,
) -> Fetched:
    """Fetch the source now through the collector: in this request without a broker (200,
    with what it found), else by the workers (202)."""
    done = fetch_now(session, request.app.state.sessionmaker, source_id, settings)
    result = done.result
    if result is None:
        response.status_code = 202
        return Fetched(source_id=source_id, mode=done.mode, ok=None, seen=0, new=0, error=None)
    return Fetched(
        source_id=source_id,
        mode=done.mode,
        ok=result.ok,
        seen=result.seen,
        new=result.new,
        error=result.error,
    )


@router.get(
    "/scheduled/overdue", response_model=list[OverdueOut], dependencies=[needs(Role.VIEWER)]
)
def overdue(session: SessionDep, settings: SettingsDep) -> list[OverdueOut]:
    """Scheduled issues due for a while and still without their issue, oldest first, with
    what stops them (as `digest issues overdue` and the editor's issues page show them)."""
    return [OverdueOut.model_validate(row) for row in overview.overdue_rows(session, settings)]


# The subscriber and suppression operations (admins), in a module of their own.
subscriber_routes.register(router)

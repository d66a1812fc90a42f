"""The editor's pages under /editor: issues, one issue (preview, items, proof, approve, send),
lists with their subscribers, sources with their health.

Access, roles and CSRF as in `digest.web.auth`: signed in (else a redirect to the sign-in
page), each route with the least role it needs; every change is in the audit log.
Pages load no script: every action is a form POST answered by a redirect (post/redirect/get)
to the page with a notice, or, when the action is refused, the page again with the reason.
The preview is a separate sandboxed document with its own strict CSP, framed at 600 and
375 px; the editor's pages themselves allow nothing but their stylesheet and that frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from digest import overview
from digest.delivery.ledger import issue_progress, waves_to_come
from digest.delivery.report import KINDS, Kind, issue_report, report_page
from digest.errors import DigestError, NotFound
from digest.issues import items as issue_items
from digest.issues import lifecycle
from digest.issues.compose import compose_issue
from digest.issues.preview import (
    personalise_for_preview,
    render_preview,
    render_variant_preview,
)
from digest.issues.schedule import in_zone, parse_local_time, schedule_send, unschedule_send
from digest.issues.variants import variant_summaries
from digest.models import IssueStatus, MailingList, Role, SubscriptionStatus
from digest.pipeline import approve_issue
from digest.subscribers.lists import set_postal_address
from digest.subscribers.service import count_by_status
from digest.web import csrf, dispatch
from digest.web.auth import AuditDep, csrf_token, current_user, needs, require_form_csrf
from digest.web.deps import SessionDep, SettingsDep, app_settings, mark_failed
from digest.web.guarded import GuardedRoute, Handled
from digest.web.params import AfterKey, IssueId, ItemId, PositionField, Slug
from digest.web.templating import TEMPLATES_DIR, render, root_path

# Scripts: our own files only (the issue page's progress poller), which fetch our own JSON.
EDITOR_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The email's HTML: its inline styles and remote images, no script, no forms, and framed by
# the editor only; `sandbox` makes it an opaque origin whatever it contains.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "form-action 'none'; frame-ancestors 'self'; base-uri 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)
STYLESHEET = TEMPLATES_DIR / "editor" / "editor.css"
View = Literal["desktop", "mobile", "text"]
WIDTHS: dict[str, int] = {"desktop": 600, "mobile": 375}
NOTICES = {
    "saved": "Changes saved.",
    "moved": "Item moved.",
    "dropped": "Item dropped. It will not be offered again for this list.",
    "approved": "Approved. The issue is rendered and frozen, ready to send.",
    "sending-workers": "Sending: the workers are delivering the issue.",
    "sending-in-process": "Sending from this server. Refresh to follow the progress.",
    "paused": "Paused. No new batches are sent until you resume.",
    "cancelled": "Cancelled. Nothing more will be sent; its items are free for the next issue.",
    "drafted": "Back to draft. Edit it, then approve it again: it is rendered anew.",
    "proof": "Proof sent.",
    "composed": "New draft composed from what is new since the last issue.",
    "discarded": "Draft discarded. Its items are free for the next issue.",
    "nothing-new": "Nothing new since the last issue: no draft was created.",
    "welcome": "Welcome: you are this install’s first admin. Add the others under Users.",
    "postal-address": "Postal address saved. The next approved issue shows it.",
    "scheduled": "Scheduled. It is sent at that time unless you unschedule it.",
    "unscheduled": "Unscheduled. The issue stays approved; send it or schedule it again.",
    "item-saved": "Item saved: this issue shows your title and summary.",
    "item-added": "Item added to the draft.",
    "sending-rest": "Sending to those who have not got it.",
}
TITLES = {
    400: "That request wasn’t understood",
    401: "Sign in to the editor",
    403: "Not allowed",
    404: "Not found",
    429: "Too many failed sign-ins",
}
T = TypeVar("T")


def when(value: datetime | None) -> str:
    """Stored naive UTC, shown as such: an editor's browser may be anywhere."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    *,
    signed_in: bool = True,
) -> HTMLResponse:
    principal = getattr(request.state, "principal", None) if signed_in else None
    values = {
        "csrf": csrf_token(request) if principal else "",
        "signed_in": principal is not None,
        "principal": principal,
        "when": when,
        "in_zone": in_zone,
        "section": "",
        "notice": None,
        "error": None,
        **context,
    }
    response = render(request, f"editor/{template}", values, status_code)
    response.headers["content-security-policy"] = EDITOR_CSP
    csrf.set_cookie(request, response, app_settings(request))
    return response


class EditorRoute(GuardedRoute):
    @staticmethod
    async def answer(request: Request, exc: Handled) -> Response:
        headers: Mapping[str, str] | None = None
        if isinstance(exc, HTTPException) and exc.status_code == 401:
            target = quote(request.url.path, safe="/")
            return RedirectResponse(f"{root_path(request)}/editor/signin?next={target}", 303)
        if isinstance(exc, HTTPException):
            status, message, headers = exc.status_code, str(exc.detail), exc.headers
        elif isinstance(exc, RequestValidationError):
            status, message = 400, "Some of the form’s fields were missing or not valid."
        else:
            status, message = (404 if isinstance(exc, NotFound) else 400), str(exc)
        title = TITLES.get(status, "Something went wrong")
        context = {"title": title, "message": message, "status": status}
        signed_in = status not in (401, 429)
        response = page(request, "error.html", context, status, signed_in=signed_in)
        response.headers.update(headers or {})
        return response


router = APIRouter(
    prefix="/editor",
    route_class=EditorRoute,
    dependencies=[Depends(current_user), Depends(require_form_csrf), AuditDep],
)


def see_other(request: Request, path: str) -> RedirectResponse:
    """After a form's POST: 303 to the editor page at `path` (under the app's root path)."""
    return RedirectResponse(f"{root_path(request)}/editor{path}", status_code=303)


def _notice(done: str | None, count: int | None = None) -> str | None:
    if done == "proof" and count:
        return f"Proof sent to {count} address{'es' if count != 1 else ''}."
    return NOTICES.get(done or "")


@router.get("", include_in_schema=False, dependencies=[needs(Role.VIEWER)])
@router.get("/", include_in_schema=False, dependencies=[needs(Role.VIEWER)])
def home(request: Request) -> RedirectResponse:
    return see_other(request, "/issues")


@router.get("/issues", response_class=HTMLResponse, dependencies=[needs(Role.VIEWER)])
def issues_page(
    request: Request,
    session: SessionDep,
    status: IssueStatus | None = None,
    done: str | None = None,
) -> Response:
    rows = overview.issue_rows(session, status=status, limit=200)
    context = {
        "section": "issues",
        "overdue": overview.overdue_rows(session, app_settings(request)),
        "rows": rows,
        "status": status,
        "statuses": [s.value for s in IssueStatus],
        "notice": _notice(done),
    }
    return page(request, "issues.html", context)


def issue_page(
    request: Request,
    session: Session,
    issue_id: int,
    view: View = "desktop",
    *,
    notice: str | None = None,
    error: str | None = None,
    proof_results: list[Any] | None = None,
    status_code: int = 200,
    variant: int | None = None,
) -> HTMLResponse:
    issue = lifecycle.get_issue(session, issue_id)
    variants = variant_summaries(session, issue_id)
    if variant is not None and variant not in {v.id for v in variants if v.items}:
        variant = None  # another issue's, or one with nothing to show: the issue itself
    rendered = (
        render_preview(session, issue_id, app_settings(request))
        if variant is None
        else render_variant_preview(session, issue_id, variant)
    )
    lst: MailingList = issue.mailing_list
    items = overview.issue_items(session, issue_id)
    context = {
        "section": "issues",
        "issue": issue,
        "list": lst,
        "items": items,
        # Only an approved issue's send form shows it: no count of the whole list on each
        # refresh while sending.
        "receiving": (
            count_by_status(session, lst.id).get(SubscriptionStatus.CONFIRMED, 0)
            if issue.status == IssueStatus.APPROVED
            else 0
        ),
        "progress": issue_progress(session, issue_id),
        "waves": waves_to_come(session, issue_id),
        "variants": variants,
        "variant": variant,
        "view": view,
        "width": WIDTHS.get(view, 600),
        "text": personalise_for_preview(rendered.text, rendered.slots) if view == "text" else "",
        "warnings": rendered.warnings,
        "html_kb": len(rendered.html.encode()) / 1024,
        "notice": notice,
        "error": error,
        "proof_results": proof_results,
        "editable": issue.status == IssueStatus.DRAFT,
        "groups": sorted({it.group for it in items if it.group}),
        "scheduled_value": _local_value(issue.send_at, lst.timezone),
    }
    return page(request, "issue.html", context, status_code)


def _local_value(value: datetime | None, tz: str) -> str:
    """A datetime-local field's value for a stored UTC time, in the list's zone."""
    if value is None:
        return ""
    return value.replace(tzinfo=UTC).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")


@router.get("/issues/{issue_id}", response_class=HTMLResponse, dependencies=[needs(Role.VIEWER)])
def issue_view(
    request: Request,
    session: SessionDep,
    issue_id: IssueId,
    view: View = "desktop",
    done: str | None = None,
    n: Annotated[int | None, Query(ge=0, le=1000)] = None,  # how many proofs were sent
    variant: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    return issue_page(request, session, issue_id, view, notice=_notice(done, n), variant=variant)


@router.get(
    "/issues/{issue_id}/preview", response_class=HTMLResponse, dependencies=[needs(Role.VIEWER)]
)
def issue_preview(
    session: SessionDep,
    settings: SettingsDep,
    issue_id: IssueId,
    variant: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """The framed copy: the email as a sample reader gets it, links opening a new tab (of
    one variant of an approved issue when asked)."""
    if variant is None:
        rendered = render_preview(session, issue_id, settings)
    else:
        try:
            rendered = render_variant_preview(session, issue_id, variant)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
    html = personalise_for_preview(rendered.html, rendered.slots)
    html = html.replace("<head>", '<head><base target="_blank">', 1)
    return HTMLResponse(
        html,
        headers={"content-security-policy": PREVIEW_CSP, "x-frame-options": "SAMEORIGIN"},
    )


def _act(
    request: Request,
    session: Session,
    issue_id: int,
    action: Callable[[], T],
    done: str | Callable[[T], str],
    anchor: str = "",
    refused: int = 409,
) -> Response:
    """Run a change; redirect to the issue with its notice (`done`, or `done(result)` when
    the notice depends on the outcome), or show the page with the reason it was refused."""
    try:
        result = action()
    except NotFound:
        raise
    except DigestError as exc:
        session.rollback()
        mark_failed(request)
        return issue_page(request, session, issue_id, error=str(exc), status_code=refused)
    notice = done(result) if callable(done) else done
    return see_other(request, f"/issues/{issue_id}?done={notice}{anchor}")


def _sending(result: dispatch.Dispatch) -> str:
    return f"sending-{result.mode}"


@router.post("/issues/{issue_id}/items/{item_id}/move", dependencies=[needs(Role.EDITOR)])
def move_item(
    request: Request,
    session: SessionDep,
    issue_id: IssueId,
    item_id: ItemId,
    position: PositionField,
) -> Response:
    def move() -> None:
        lifecycle.move_item(session, issue_id, item_id, position)

    return _act(request, session, issue_id, move, "moved", f"#item-{item_id}")


@router.post("/issues/{issue_id}/items/{item_id}/drop", dependencies=[needs(Role.EDITOR)])
def drop_item(
    request: Request, session: SessionDep, issue_id: IssueId, item_id: ItemId
) -> Response:
    def drop() -> None:
        lifecycle.drop_item(session, issue_id, item_id)

    return _act(request, session, issue_id, drop, "dropped", "#items")


@router.post("/issues/{issue_id}/items/{item_id}/edit", dependencies=[needs(Role.EDITOR)])
def edit_item(
    request: Request,
    session: SessionDep,
    issue_id: IssueId,
    item_id: ItemId,
    title: Annotated[str, Form(max_length=2000)],
    summary: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    def edit() -> None:
        issue_items.edit_item(session, issue_id, item_id, title=title, summary=summary)

    return _act(request, session, issue_id, edit, "item-saved", f"#item-{item_id}", refused=400)


@router.post("/issues/{issue_id}/items", dependencies=[needs(Role.EDITOR)])
def add_item(
    request: Request,
    session: SessionDep,
    issue_id: IssueId,
    title: Annotated[str, Form(max_length=2000)],
    url: Annotated[str, Form(max_length=4000)],
    summary: Annotated[str, Form(max_length=20_000)] = "",
    group: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """An item added by hand, through the collector's normalising."""

    def add() -> int:
        added = issue_items.add_item(
            session, issue_id, title=title, url=url, summary=summary, group=group
        )
        request.state.audit_detail = {"item_id": added.item_id}
        return added.item_id

    return _act(request, session, issue_id, add, "item-added", "#items", refused=400)


@router.post("/issues/{issue_id}/edit", dependencies=[needs(Role.EDITOR)])
def edit_issue(
    request: Request,
    session: SessionDep,
    issue_id: IssueId,
    subject: Annotated[str, Form(max_length=500)],
    preheader: Annotated[str, Form(max_length=500)] = "",
    intro: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    def edit() -> None:
        lifecycle.edit_draft(session, issue_id, intro=intro, subject=subject, preheader=preheader)

    return _act(request, session, issue_id, edit, "saved")


@router.post("/issues/{issue_id}/proof", dependencies=[needs(Role.EDITOR)])
def send_proof(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    issue_id: IssueId,
    addresses: Annotated[str, Form(max_length=10_000)],
) -> Response:
    """A proof copy to a few addresses (one a line or separated by commas)."""
    from digest.delivery.transport_factory import open_transport
    from digest.issues import proof

    emails = [a for a in addresses.replace(",", "\n").split() if a]
    try:
        with open_transport(settings) as transport:
            results = proof.send_proof(session, issue_id, emails, transport, settings)
    except NotFound:
        raise
    except DigestError as exc:
        session.rollback()
        mark_failed(request)
        return issue_page(request, session, issue_id, error=str(exc), status_code=400)
    if all(r.outcome == "sent" for r in results):
        return see_other(request, f"/issues/{issue_id}?done=proof&n={len(results)}#proof")
    return issue_page(
        request,
        session,
        issue_id,
        error="The proof was not sent to every address.",
        proof_results=results,
        status_code=502,
    )


@router.post("/issues/{issue_id}/approve", dependencies=[needs(Role.PUBLISHER)])
def approve(
    request: Request, session: SessionDep, settings: SettingsDep, issue_id: IssueId
) -> Response:
    def approve() -> None:
        approve_issue(session, issue_id, settings)

    return _act(request, session, issue_id, approve, "approved")


# Sending and destructive actions ask first: the form's box must be ticked ("yes"), else the
# issue's page says why nothing happened.
Confirm = Annotated[str | None, Form()]
ASK_FIRST = {
    "send": "Tick the box to confirm that the issue should go to every subscriber.",
    "cancel": "Tick the box to confirm that the issue should be cancelled.",
    "discard": "Tick the box to confirm that the draft should be deleted.",
    "send-rest": "Tick the box to confirm that the issue should go to those who have not got it.",
}


def _ask_first(request: Request, session: SessionDep, issue_id: int, action: str) -> Response:
    return issue_page(request, session, issue_id, error=ASK_FIRST[action], status_code=400)


@router.post("/issues/{issue_id}/send", dependencies=[needs(Role.PUBLISHER)])
def send(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    issue_id: IssueId,
    confirm: Confirm = None,
) -> Response:
    if confirm != "yes":
        return _ask_first(request, session, issue_id, "send")
    sf = request.app.state.sessionmaker
    return _act(
        request,
        session,
        issue_id,
        lambda: dispatch.send(session, issue_id, settings, background, sf),
        _sending,
    )


@router.post("/issues/{issue_id}/schedule", dependencies=[needs(Role.PUBLISHER)])
def schedule(
    request: Request,
    session: SessionDep,
    issue_id: IssueId,
    send_at: Annotated[str, Form(max_length=40)],
) -> Response:
    """Send at a wall-clock time of the list's time zone (a datetime-local field)."""

    def plan() -> None:
        issue = schedule_send(session, issue_id, parse_local_time(send_at))
        request.state.audit_detail = {"send_at": f"{issue.send_at:%Y-%m-%dT%H:%M:%SZ}"}

    return _act(request, session, issue_id, plan, "scheduled", refused=400)


@router.post("/issues/{issue_id}/unschedule", dependencies=[needs(Role.PUBLISHER)])
def unschedule(request: Request, session: SessionDep, issue_id: IssueId) -> Response:
    return _act(
        request, session, issue_id, lambda: unschedule_send(session, issue_id), "unscheduled"
    )


@router.post("/issues/{issue_id}/send-rest", dependencies=[needs(Role.PUBLISHER)])
def send_rest(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    issue_id: IssueId,
    confirm: Confirm = None,
) -> Response:
    """A sent issue to the confirmed subscribers who have no delivery of it."""
    if confirm != "yes":
        return _ask_first(request, session, issue_id, "send-rest")
    sf = request.app.state.sessionmaker
    return _act(
        request,
        session,
        issue_id,
        lambda: dispatch.send_rest(session, issue_id, settings, background, sf),
        "sending-rest",
        "#progress",
    )


@router.get(
    "/issues/{issue_id}/progress.json", include_in_schema=False, dependencies=[needs(Role.VIEWER)]
)
def progress_json(session: SessionDep, issue_id: IssueId) -> Response:
    """What the issue page's poller reads: the ledger's count and the issue's status."""
    status = lifecycle.get_issue(session, issue_id).status
    counts = issue_progress(session, issue_id)
    body = {
        "status": status.value,
        "pending": counts.pending,
        "sending": counts.sending,
        "sent": counts.sent,
        "failed": counts.failed,
        "skipped": counts.skipped,
        "total": counts.total,
        "settled": counts.settled,
    }
    return JSONResponse(body, headers={"cache-control": "no-store"})


@router.get(
    "/issues/{issue_id}/report", response_class=HTMLResponse, dependencies=[needs(Role.VIEWER)]
)
def report(
    request: Request,
    session: SessionDep,
    issue_id: IssueId,
    kind: Kind = "sent",
    after: AfterKey = 0,
    q: Annotated[str, Query(max_length=320)] = "",
    done: str | None = None,
) -> Response:
    """Who got the issue, who failed and why, what came back after it, who joined later."""
    issue = lifecycle.get_issue(session, issue_id)
    context = {
        "section": "issues",
        "issue": issue,
        "list": issue.mailing_list,
        "report": issue_report(session, issue),
        "rows": report_page(session, issue, kind, after=after, search=q),
        "kind": kind,
        "kinds": KINDS,
        "q": q,
        "after": after,
        "notice": _notice(done),
    }
    return page(request, "report.html", context)


@router.post("/issues/{issue_id}/pause", dependencies=[needs(Role.PUBLISHER)])
def pause(request: Request, session: SessionDep, issue_id: IssueId) -> Response:
    return _act(request, session, issue_id, lambda: lifecycle.pause(session, issue_id), "paused")


@router.post("/issues/{issue_id}/resume", dependencies=[needs(Role.PUBLISHER)])
def resume(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    issue_id: IssueId,
) -> Response:
    sf = request.app.state.sessionmaker
    return _act(
        request,
        session,
        issue_id,
        lambda: dispatch.resume(session, issue_id, settings, background, sf),
        _sending,
    )


@router.post("/issues/{issue_id}/to-draft", dependencies=[needs(Role.PUBLISHER)])
def to_draft(request: Request, session: SessionDep, issue_id: IssueId) -> Response:
    return _act(
        request, session, issue_id, lambda: lifecycle.return_to_draft(session, issue_id), "drafted"
    )


@router.post("/issues/{issue_id}/cancel", dependencies=[needs(Role.PUBLISHER)])
def cancel(
    request: Request,
    session: SessionDep,
    issue_id: IssueId,
    confirm: Confirm = None,
) -> Response:
    if confirm != "yes":
        return _ask_first(request, session, issue_id, "cancel")
    return _act(
        request, session, issue_id, lambda: lifecycle.cancel(session, issue_id), "cancelled"
    )


@router.post("/issues/{issue_id}/discard", dependencies=[needs(Role.EDITOR)])
def discard(
    request: Request,
    session: SessionDep,
    issue_id: IssueId,
    confirm: Confirm = None,
) -> Response:
    if confirm != "yes":
        return _ask_first(request, session, issue_id, "discard")
    response = _act(
        request, session, issue_id, lambda: lifecycle.discard_draft(session, issue_id), ""
    )
    if isinstance(response, RedirectResponse):
        return see_other(request, "/issues?done=discarded")
    return response


@router.get("/lists", response_class=HTMLResponse, dependencies=[needs(Role.VIEWER)])
def lists_page(request: Request, session: SessionDep, done: str | None = None) -> Response:
    context = {
        "section": "lists",
        "rows": overview.list_rows(session),
        "notice": _notice(done),
    }
    return page(request, "lists.html", context)


@router.post("/lists/{slug}/compose", dependencies=[needs(Role.EDITOR)])
def compose(request: Request, session: SessionDep, slug: Slug) -> Response:
    try:
        issue = compose_issue(session, slug)
    except NotFound:
        raise
    except DigestError as exc:
        session.rollback()
        mark_failed(request)
        context = {"section": "lists", "rows": overview.list_rows(session), "error": str(exc)}
        return page(request, "lists.html", context, 409)
    if issue is None:
        return see_other(request, "/lists?done=nothing-new")
    return see_other(request, f"/issues/{issue.id}?done=composed")


@router.post("/lists/{slug}/postal-address", dependencies=[needs(Role.ADMIN)])
def postal_address(
    request: Request,
    session: SessionDep,
    slug: Slug,
    address: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        set_postal_address(session, slug, address)
    except NotFound:
        raise
    except DigestError as exc:
        session.rollback()
        mark_failed(request)
        context = {"section": "lists", "rows": overview.list_rows(session), "error": str(exc)}
        return page(request, "lists.html", context, 422)
    return see_other(request, "/lists?done=postal-address")


@router.get("/sources", response_class=HTMLResponse, dependencies=[needs(Role.VIEWER)])
def sources_page(request: Request, session: SessionDep) -> Response:
    context = {"section": "sources", "rows": overview.source_rows(session)}
    return page(request, "sources.html", context)

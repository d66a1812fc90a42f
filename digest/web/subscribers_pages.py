"""The admin's subscriber pages: search (/editor/subscribers) and its export, one subscriber's
record (/editor/subscribers/{id}) with its edit, unsubscribe, data download and erase, a
subscriber added by hand, a CSV upload (/editor/subscribers/import) and the suppression list
(/editor/suppressions). Access, roles, CSRF and the audit log as in `digest.web.auth` (admins
only); every action is a service function the JSON API and the CLI call too. The audit log
names subscribers and suppressions by id, never by address (an erasure leaves none behind).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from digest.db import MAX_BIGINT
from digest.errors import DigestError
from digest.models import RECEIVING, MailingList, Role, SubscriptionStatus, SuppressionReason
from digest.subscribers import export, gdpr, manage, search, suppression
from digest.subscribers.addresses import MAX_LENGTH
from digest.subscribers.lists import get_list
from digest.subscribers.service import import_rows
from digest.subscribers.topics import parse_topic_ids, topics_of_lists
from digest.web.api_subscribers import export_response
from digest.web.auth import AuditDep, current_user, needs, require_form_csrf
from digest.web.deps import SessionDep, mark_failed
from digest.web.editor import EditorRoute, page, see_other
from digest.web.params import SearchText

router = APIRouter(
    prefix="/editor",
    route_class=EditorRoute,
    include_in_schema=False,
    dependencies=[Depends(current_user), Depends(require_form_csrf), AuditDep],
)
E = TypeVar("E", bound=StrEnum)
SubscriberId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
SuppressionId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
ListField = Annotated[str, Form(alias="list", pattern=r"^[0-9]{0,9}$")]
Confirm = Annotated[str | None, Form()]
# "<list id>:<value>", repeated: a per-list field of the subscriber's edit form.
ListValues = Annotated[
    list[Annotated[str, Form(pattern=r"^[1-9][0-9]{0,8}:[a-z0-9][a-z0-9_-]{0,99}$")]] | None,
    Form(max_length=500),
]
NOTICES = {
    "added": "Subscriber added.",
    "saved": "Changes saved.",
    "unsubscribed": "Unsubscribed. The change is recorded as the subscriber's event, via admin.",
    "unchanged": "Nothing to change.",
    "erased": "Erased. Everything about the person is gone; a hashed suppression is kept so "
    "that nothing mails them again.",
    "suppressed": "Address suppressed.",
    "already": "That address was suppressed already.",
    "lifted": "Suppression lifted: mail may go to that address again.",
}


def _list_id(value: str) -> int | None:
    return int(value) if value and int(value) > 0 else None


def _choice(kind: type[E], value: str, field: str) -> E | None:
    """A query's enum field; the filter forms send "" for "any"."""
    try:
        return kind(value) if value else None
    except ValueError:
        error = {"loc": ("query", field), "msg": f"no such {field}"}
        raise RequestValidationError([error]) from None


@router.get("/subscribers", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)])
def subscribers_page(
    request: Request,
    session: SessionDep,
    q: SearchText = "",
    # The filter form sends every field, empty when not chosen: "" is "any".
    list_: Annotated[str, Query(alias="list", pattern=r"^[0-9]{0,9}$")] = "",
    status_: Annotated[str, Query(alias="status", max_length=16)] = "",
    suppressed: search.Suppressed = search.Suppressed.ANY,
    before: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    list_id = _list_id(list_)
    status = _choice(SubscriptionStatus, status_, "status")
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
        "notice": NOTICES.get(done or ""),
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
    # Its progress bar is our own script, posting to this origin: EDITOR_CSP allows both.
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


@router.get("/subscribers/export", dependencies=[needs(Role.ADMIN)])
def export_subscribers(
    request: Request,
    session: SessionDep,
    format: export.Format = export.Format.CSV,
    q: SearchText = "",
    list_: Annotated[str, Query(alias="list", pattern=r"^[0-9]{0,9}$")] = "",
    status_: Annotated[str, Query(alias="status", max_length=16)] = "",
    suppressed: search.Suppressed = search.Suppressed.ANY,
) -> Response:
    """What the search shows (a list's subscribers with their status there), streamed."""
    list_id = _list_id(list_)
    lst = get_list(session, list_id) if list_id else None
    selection = export.Selection(
        list_id, _choice(SubscriptionStatus, status_, "status"), q, suppressed
    )
    return export_response(request, selection, format, lst.slug if lst else "subscribers")


def _new_page(
    request: Request,
    session: SessionDep,
    *,
    error: str | None = None,
    values: dict[str, object] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "section": "subscribers",
        "lists": search.list_choices(session),
        "error": error,
        "values": values or {},
    }
    return page(request, "subscriber_new.html", context, status)


@router.get("/subscribers/new", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)])
def new_subscriber_form(request: Request, session: SessionDep) -> Response:
    return _new_page(request, session)


@router.post("/subscribers/new", dependencies=[needs(Role.ADMIN)])
def add_subscriber(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=MAX_LENGTH + 100)],
    lists: Annotated[list[Annotated[int, Form(ge=1, le=2**31 - 1)]], Form(max_length=100)],
    name: Annotated[str, Form(max_length=1000)] = "",
    consent: Confirm = None,
) -> Response:
    """By hand: the consent box decides, as for an upload (confirmed, or a confirmation mail)."""
    try:
        added = manage.add_by_hand(
            session, email, lists, name=name, consent_recorded=consent == "yes"
        )
    except DigestError as exc:
        session.rollback()
        mark_failed(request)
        values = {"email": email, "name": name, "lists": lists, "consent": consent == "yes"}
        return _new_page(request, session, error=f"{exc}.", values=values, status=400)
    request.state.audit_target = ("subscriber", added.subscriber_id)
    request.state.audit_detail = {"lists": sorted(lists), "consent_recorded": consent == "yes"}
    return see_other(request, f"/subscribers/{added.subscriber_id}?done=added")


# After /subscribers/import, /new and /export: a path with an id matches any word.
@router.get(
    "/subscribers/{subscriber_id}", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)]
)
def subscriber_page(
    request: Request,
    session: SessionDep,
    subscriber_id: SubscriberId,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _subscriber_page(request, session, subscriber_id, notice=NOTICES.get(done or ""))


def _subscriber_page(
    request: Request,
    session: SessionDep,
    subscriber_id: int,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    record = search.record(session, subscriber_id)
    topics = topics_of_lists(session, [lst.id for _, lst in record.subscriptions])
    chosen = {sub.list_id: set(parse_topic_ids(sub.topic_ids)) for sub, _ in record.subscriptions}
    context = {
        "section": "subscribers",
        "record": record,
        "topics": topics,
        "chosen_topics": chosen,
        "receiving": [s.value for s in RECEIVING],
        "notice": notice,
        "error": error,
    }
    return page(request, "subscriber.html", context, status)


def _refused(request: Request, session: SessionDep, subscriber_id: int, exc: Exception) -> Response:
    session.rollback()
    mark_failed(request)
    return _subscriber_page(request, session, subscriber_id, error=f"{exc}.", status=400)


@router.post("/subscribers/{subscriber_id}/edit", dependencies=[needs(Role.ADMIN)])
def edit_subscriber(
    request: Request,
    session: SessionDep,
    subscriber_id: SubscriberId,
    name: Annotated[str, Form(max_length=1000)],
    language: Annotated[str, Form(max_length=35)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "",
    status: ListValues = None,
    topics: ListValues = None,
    topics_shown: Annotated[
        list[Annotated[int, Form(ge=1, le=2**31 - 1)]] | None,
        Form(alias="topics-shown", max_length=100),
    ] = None,
) -> Response:
    """The name, language and time zone; per list, `status` and `topics` fields each
    "<list id>:<value>". A list in `topics-shown` had its topics on the form: none ticked
    there is "everything"."""
    manage.get_subscriber(session, subscriber_id)  # a 404, not a refusal on the page
    chosen: dict[int, list[str]] = {list_id: [] for list_id in topics_shown or ()}
    for list_id, slug in _pairs(topics or ()):
        chosen.setdefault(list_id, []).append(slug)
    try:
        statuses = {list_id: SubscriptionStatus(value) for list_id, value in _pairs(status or ())}
    except ValueError:
        return _refused(request, session, subscriber_id, DigestError("no such status"))
    try:
        changed = manage.edit(
            session,
            subscriber_id,
            name=name,
            language=language,
            timezone=timezone,
            topics=chosen,
            statuses=statuses,
        )
    except DigestError as exc:
        return _refused(request, session, subscriber_id, exc)
    request.state.audit_detail = {"changed": changed}
    done = "saved" if changed else "unchanged"
    return see_other(request, f"/subscribers/{subscriber_id}?done={done}")


def _pairs(values: Sequence[str]) -> list[tuple[int, str]]:
    """ "<list id>:<value>" fields (their pattern checked by the form's validation)."""
    return [(int(list_id), value) for list_id, _, value in (v.partition(":") for v in values)]


@router.post("/subscribers/{subscriber_id}/unsubscribe", dependencies=[needs(Role.ADMIN)])
def unsubscribe_subscriber(
    request: Request, session: SessionDep, subscriber_id: SubscriberId, list_: ListField = ""
) -> Response:
    """From one list, or from all (no list)."""
    manage.get_subscriber(session, subscriber_id)  # a 404, not a refusal on the page
    try:
        stopped = manage.unsubscribe(session, subscriber_id, _list_id(list_))
    except DigestError as exc:
        return _refused(request, session, subscriber_id, exc)
    request.state.audit_detail = {"lists": stopped}
    done = "unsubscribed" if stopped else "unchanged"
    return see_other(request, f"/subscribers/{subscriber_id}?done={done}")


@router.get("/subscribers/{subscriber_id}/data.json", dependencies=[needs(Role.ADMIN)])
def person_data(session: SessionDep, subscriber_id: SubscriberId) -> Response:
    """Everything about the person (GDPR), a download."""
    data = gdpr.person_data(session, subscriber_id)
    headers = {"content-disposition": f'attachment; filename="subscriber-{subscriber_id}.json"'}
    return JSONResponse(data, headers=headers)


@router.post("/subscribers/{subscriber_id}/erase", dependencies=[needs(Role.ADMIN)])
def erase_subscriber(
    request: Request, session: SessionDep, subscriber_id: SubscriberId, confirm: Confirm = None
) -> Response:
    """Asks first: the form's box must be ticked."""
    if confirm != "yes":
        mark_failed(request)
        error = "Tick the box to confirm that everything about this person should be erased."
        return _subscriber_page(request, session, subscriber_id, error=error, status=400)
    done = gdpr.erase(session, subscriber_id)
    request.state.audit_detail = {"erased": True, "deliveries": done.deliveries}
    return see_other(request, "/subscribers?done=erased")


def _suppressions_page(
    request: Request,
    session: SessionDep,
    *,
    q: str = "",
    reason: SuppressionReason | None = None,
    before: int | None = None,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    found = suppression.page(session, text=q, reason=reason, before_id=before)
    context = {
        "section": "subscribers",
        "rows": found.rows,
        "next_before": found.next_before,
        "filters": {"q": q, "reason": reason.value if reason else ""},
        "reasons": [r.value for r in SuppressionReason],
        "first_page": before is None,
        "erased_prefix": suppression.ERASED_PREFIX,
        "notice": notice,
        "error": error,
    }
    return page(request, "suppressions.html", context, status)


@router.get("/suppressions", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)])
def suppressions_page(
    request: Request,
    session: SessionDep,
    q: SearchText = "",
    reason_: Annotated[str, Query(alias="reason", max_length=16)] = "",
    before: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    reason = _choice(SuppressionReason, reason_, "reason")
    notice = NOTICES.get(done or "")
    return _suppressions_page(request, session, q=q, reason=reason, before=before, notice=notice)


@router.post("/suppressions", dependencies=[needs(Role.ADMIN)])
def add_suppression(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=MAX_LENGTH + 100)],
    detail: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        entry, added = suppression.add_manual(session, email, detail)
    except DigestError as exc:
        session.rollback()
        mark_failed(request)
        return _suppressions_page(request, session, error=f"{exc}.", status=400)
    request.state.audit_target = ("suppression", entry.id)
    request.state.audit_detail = {"added": added}
    return see_other(request, f"/suppressions?done={'suppressed' if added else 'already'}")


@router.post("/suppressions/{suppression_id}/lift", dependencies=[needs(Role.ADMIN)])
def lift_suppression(
    request: Request, session: SessionDep, suppression_id: SuppressionId, confirm: Confirm = None
) -> Response:
    if confirm != "yes":
        mark_failed(request)
        error = "Tick the box to confirm that mail may go to this address again."
        return _suppressions_page(request, session, error=error, status=400)
    lifted = suppression.lift(session, suppression_id)
    request.state.audit_target = ("suppression", suppression_id)
    request.state.audit_detail = {"reason": str(lifted.reason)}
    return see_other(request, "/suppressions?done=lifted")

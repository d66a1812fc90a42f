"""The admin's source pages: add a source after a `try` preview of what it yields
(/editor/sources/new), one source's health, history, selectors, language and topics, fetch
now, disable and enable (/editor/sources/{id}). Access, roles, CSRF and the audit log as in
`digest.web.auth`: anyone signed in reads, admins change."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from digest import overview
from digest.db import MAX_INT
from digest.errors import DigestError, NotFound
from digest.models import MailingList, Role
from digest.sources.history import recent_fetches
from digest.sources.listing import Selectors
from digest.sources.reader import ReadResult
from digest.sources.registry import (
    INTERVAL_MAX,
    INTERVAL_MIN,
    KINDS,
    SELECTOR_FIELDS,
    add_read_source,
    get_source,
    selectors_from,
    set_enabled,
    topics_of_its_lists,
    try_source,
    update_source,
)
from digest.subscribers.lists import find_list, link_source
from digest.subscribers.search import list_choices
from digest.web.auth import AuditDep, current_user, needs, require_form_csrf
from digest.web.collecting import fetch_now
from digest.web.deps import SessionDep, SettingsDep, mark_failed
from digest.web.editor import EditorRoute, page, see_other
from digest.web.params import SourceId

router = APIRouter(
    prefix="/editor",
    route_class=EditorRoute,
    include_in_schema=False,
    dependencies=[Depends(current_user), Depends(require_form_csrf), AuditDep],
)
Line = Annotated[str, Form(max_length=5000)]
NOTICES = {
    "added": "Source added. It is fetched with the others from now on.",
    "saved": "Source saved.",
    "disabled": "Source disabled: it is not fetched until you enable it.",
    "enabled": "Source enabled: it is fetched at the next collect.",
}
SHOWN_ITEMS = 50


def source_form(
    url: Line = "",
    kind: Line = "auto",
    name: Line = "",
    language: Line = "",
    interval: Line = "60",
    list_slug: Annotated[str, Form(alias="list", max_length=100)] = "",
    candidate: Line = "1",
    item: Line = "",
    title: Line = "",
    link: Line = "",
    date: Line = "",
    summary: Line = "",
    image: Line = "",
    next_: Annotated[str, Form(alias="next", max_length=5000)] = "",
    page_param: Line = "",
    max_pages: Line = "",
    page_step: Line = "",
    date_order: Line = "",
    siblings: Line = "",
) -> dict[str, str]:
    return {
        "url": url.strip(), "kind": kind, "name": name, "language": language,
        "interval": interval.strip(), "list": list_slug, "candidate": candidate.strip(),
        "item": item, "title": title, "link": link, "date": date, "summary": summary,
        "image": image, "next": next_, "page_param": page_param, "max_pages": max_pages,
        "page_step": page_step, "date_order": date_order, "siblings": siblings,
    }  # fmt: skip


SourceForm = Annotated[dict[str, str], Depends(source_form)]


def _number(form: dict[str, str], field: str, low: int, high: int) -> int:
    text = form[field]
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and low <= int(text) <= high):
        raise DigestError(f"the {field} is a whole number from {low} to {high}")
    return int(text)


def _read(form: dict[str, str], settings: Any) -> tuple[ReadResult, Selectors | None]:
    selectors = selectors_from(form)
    result = try_source(
        form["url"],
        kind=form["kind"],
        selectors=selectors,
        language=form["language"],
        candidate=_number(form, "candidate", 1, 50) - 1,
        settings=settings,
    )
    return result, selectors


def _lists(session: Session) -> list[MailingList]:
    return list(list_choices(session))


def _new_page(
    request: Request,
    session: Session,
    form: dict[str, str],
    *,
    result: ReadResult | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    chosen = result.selectors.to_dict() if result and result.selectors else {}
    context = {
        "section": "sources",
        "form": form,
        "kinds": KINDS,
        "selector_fields": SELECTOR_FIELDS,
        "lists": _lists(session),
        "result": result,
        "items": result.items[:SHOWN_ITEMS] if result else [],
        "chosen": chosen,
        "error": error,
    }
    return page(request, "source_new.html", context, status)


@router.get("/sources/new", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)])
def new_source(
    request: Request,
    session: SessionDep,
    list_slug: Annotated[str, Query(alias="list", max_length=100)] = "",
) -> Response:
    form = source_form(list_slug=list_slug)
    return _new_page(request, session, form)


@router.post(
    "/sources/try",
    name="try_source",
    response_class=HTMLResponse,
    dependencies=[needs(Role.ADMIN)],
)
def try_page(
    request: Request, session: SessionDep, settings: SettingsDep, form: SourceForm
) -> Response:
    """What the source yields now (the items the collector would take), nothing stored."""
    try:
        result, _given = _read(form, settings)
    except DigestError as exc:
        mark_failed(request)
        return _new_page(request, session, form, error=str(exc), status=422)
    request.state.audit_target = ("source", form["url"][:300])
    if result.selectors and result.selectors.inferred:
        # The form then holds what was inferred: saving stores exactly what was shown.
        form = {**form, **{k: str(v) for k, v in result.selectors.to_dict().items()}}
        form["candidate"] = "1"
    return _new_page(request, session, form, result=result)


@router.post("/sources", name="add_source", dependencies=[needs(Role.ADMIN)])
def add(request: Request, session: SessionDep, settings: SettingsDep, form: SourceForm) -> Response:
    """Read it once more (what is stored is what this read found), then store it."""
    try:
        lst = find_list(session, form["list"]) if form["list"] else None
        if form["list"] and lst is None:
            raise DigestError(f"no list {form['list'][:40]!r}")
        interval = _number(form, "interval", INTERVAL_MIN, INTERVAL_MAX)
        result, _given = _read(form, settings)
        source = add_read_source(
            session,
            form["url"],
            result,
            name=form["name"],
            language=form["language"],
            fetch_interval_minutes=interval,
        )
        if lst is not None:
            link_source(session, lst.id, source.id)
    except DigestError as exc:
        session.rollback()
        mark_failed(request)
        return _new_page(request, session, form, error=str(exc), status=422)
    request.state.audit_target = ("source", source.id)
    request.state.audit_detail = {"url": source.url[:300], "list": form["list"] or None}
    return see_other(request, f"/sources/{source.id}?done=added")


def source_page(
    request: Request,
    session: Session,
    source_id: int,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    source = get_source(session, source_id)
    (row,) = overview.source_rows(session, source_id)
    topics = topics_of_its_lists(session, source_id)
    tagged = {t.id for t in topics if source_id in (t.source_ids or [])}
    context = {
        "section": "sources",
        "source": source,
        "row": row,
        "selectors": source.selectors or {},
        "selector_fields": SELECTOR_FIELDS,
        "fetches": recent_fetches(session, source_id),
        "topics": topics,
        "tagged": tagged,
        "list_names": {lst.id: lst.name for lst in _lists(session)},
        "notice": notice,
        "error": error,
    }
    return page(request, "source.html", context, status)


@router.get("/sources/{source_id}", response_class=HTMLResponse, dependencies=[needs(Role.VIEWER)])
def show_source(
    request: Request,
    session: SessionDep,
    source_id: SourceId,
    done: str | None = None,
) -> Response:
    return source_page(request, session, source_id, notice=_notice(session, source_id, done))


def _notice(session: Session, source_id: int, done: str | None) -> str | None:
    """The notice of a redirect; a fetch's tells what the source's latest fetch found (never
    text from the URL)."""
    if done == "queued":
        return "Queued: the workers fetch it now. Refresh to see its health and history."
    if done != "fetched":
        return NOTICES.get(done or "")
    latest = next(iter(recent_fetches(session, source_id, limit=1)), None)
    if latest is None:
        return None
    if latest.error:
        return f"Fetched, and it failed: {latest.error}"
    if latest.outcome == "not_modified":
        return "Fetched: nothing changed since the last fetch."
    return f"Fetched: {latest.seen} items, {latest.new} new."


def _refused(request: Request, session: Session, source_id: int, exc: DigestError) -> Response:
    if isinstance(exc, NotFound):
        raise exc
    session.rollback()
    mark_failed(request)
    return source_page(request, session, source_id, error=str(exc), status=422)


@router.post("/sources/{source_id}", name="edit_source", dependencies=[needs(Role.ADMIN)])
def edit(
    request: Request,
    session: SessionDep,
    source_id: SourceId,
    form: SourceForm,
    topic_ids: Annotated[list[int] | None, Form()] = None,
    topics_shown: Annotated[str | None, Form()] = None,
) -> Response:
    try:
        source = get_source(session, source_id)
        interval = _number(form, "interval", INTERVAL_MIN, INTERVAL_MAX)
        selectors: Selectors | bool | None = False
        if source.kind != "feed":
            selectors = selectors_from(form)
        topics: list[int] | None = None
        if topics_shown == "yes":
            topics = topic_ids or []
            if any(not 1 <= i <= MAX_INT for i in topics):
                raise DigestError("no such topic")
        _source, changed = update_source(
            session,
            source_id,
            name=form["name"],
            selectors=selectors,
            language=form["language"],
            fetch_interval_minutes=interval,
            topic_ids=topics,
        )
    except DigestError as exc:
        return _refused(request, session, source_id, exc)
    request.state.audit_detail = {"changed": changed}
    return see_other(request, f"/sources/{source_id}?done=saved")


@router.post("/sources/{source_id}/fetch", name="fetch_source", dependencies=[needs(Role.ADMIN)])
def fetch(
    request: Request, session: SessionDep, settings: SettingsDep, source_id: SourceId
) -> Response:
    try:
        done = fetch_now(session, request.app.state.sessionmaker, source_id, settings)
    except DigestError as exc:
        return _refused(request, session, source_id, exc)
    request.state.audit_detail = {"mode": done.mode}
    return see_other(
        request, f"/sources/{source_id}?done={'queued' if done.result is None else 'fetched'}"
    )


def _toggle(request: Request, session: Session, source_id: int, enabled: bool) -> Response:
    set_enabled(session, source_id, enabled)
    return see_other(request, f"/sources/{source_id}?done={'enabled' if enabled else 'disabled'}")


@router.post(
    "/sources/{source_id}/disable", name="disable_source", dependencies=[needs(Role.ADMIN)]
)
def disable(request: Request, session: SessionDep, source_id: SourceId) -> Response:
    return _toggle(request, session, source_id, False)


@router.post("/sources/{source_id}/enable", name="enable_source", dependencies=[needs(Role.ADMIN)])
def enable(request: Request, session: SessionDep, source_id: SourceId) -> Response:
    return _toggle(request, session, source_id, True)

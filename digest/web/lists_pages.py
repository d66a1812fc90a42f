"""The admin's list pages: create a list (/editor/lists/new), one list's settings, sources and
topics (/editor/lists/{slug}). Access, roles, CSRF and the audit log as in `digest.web.auth`:
anyone signed in reads, admins change. A refused field is shown beside itself (422)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from digest.db import MAX_INT
from digest.errors import DigestError
from digest.models import Grouping, OptIn, Role
from digest.sources.registry import all_sources
from digest.subscribers.list_settings import InvalidSettings, ListSettings, describe_schedule
from digest.subscribers.lists import (
    create_list_with,
    get_list,
    link_source,
    unlink_source,
    update_list,
)
from digest.subscribers.topics import define_topic, delete_topic, list_topics, time_zones
from digest.web.auth import AuditDep, current_user, needs, require_form_csrf
from digest.web.deps import SessionDep, mark_failed
from digest.web.editor import EditorRoute, page, see_other
from digest.web.params import Slug

router = APIRouter(
    prefix="/editor",
    route_class=EditorRoute,
    include_in_schema=False,
    dependencies=[Depends(current_user), Depends(require_form_csrf), AuditDep],
)
NOTICES = {
    "created": "List created. Link its sources below, then compose its first issue.",
    "saved": "Settings saved.",
    "linked": "Source linked: its items go into the list’s next issue.",
    "unlinked": "Source unlinked: its items no longer go into this list.",
    "topic": "Topic saved.",
    "topic-deleted": "Topic deleted; its readers keep their other topics.",
}
SourceIdField = Annotated[int, Form(ge=1, le=MAX_INT)]
TopicSlug = Annotated[str, Form(min_length=1, max_length=100)]
# Generous bounds: the service says what is too long, beside the field; past these, a 400.
Line = Annotated[str, Form(max_length=5000)]
Block = Annotated[str, Form(max_length=20_000)]


def list_form(
    name: Line = "",
    description: Block = "",
    from_name: Line = "",
    from_email: Line = "",
    reply_to: Line = "",
    postal_address: Block = "",
    language: Line = "en",
    timezone: Line = "UTC",
    schedule: Line = "monthly 1 09:00",
    send_local_time: Line = "",
    opt_in: Line = OptIn.DOUBLE.value,
    grouping: Line = Grouping.MONTH.value,
    subject_template: Line = "{list}: {month}",
    preheader_template: Line = "{count} new items",
    lookback_days: Line = "31",
    max_items: Line = "50",
    auto_approve: Annotated[str | None, Form()] = None,
    private: Annotated[str | None, Form()] = None,
    editions: Line = "",
) -> tuple[ListSettings, dict[str, str]]:
    """The form's fields as settings, and the numbers that are not numbers."""
    errors: dict[str, str] = {}

    def number(field: str, text: str) -> int:
        if text.strip().isascii() and text.strip().isdigit() and len(text.strip()) <= 6:
            return int(text)
        errors[field] = "a whole number"
        return 0

    values = ListSettings(
        name=name,
        description=description,
        from_name=from_name,
        from_email=from_email,
        reply_to=reply_to,
        postal_address=postal_address,
        language=language,
        timezone=timezone,
        schedule=schedule,
        send_local_time=send_local_time,
        opt_in=opt_in,
        grouping=grouping,
        subject_template=subject_template,
        preheader_template=preheader_template,
        lookback_days=number("lookback_days", lookback_days),
        max_items=number("max_items", max_items),
        auto_approve=auto_approve == "yes",
        private=private == "yes",
        editions=[e for e in editions.replace(",", " ").split() if e],
    )
    return values, errors


ListForm = Annotated[tuple[ListSettings, dict[str, str]], Depends(list_form)]


def _choices() -> dict[str, Any]:
    return {
        "zones": time_zones(),
        "groupings": [g.value for g in Grouping],
        "opt_ins": [o.value for o in OptIn],
    }


def _form_page(
    request: Request,
    values: ListSettings,
    *,
    slug: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "section": "lists",
        "values": values,
        "slug": slug,
        "errors": errors or {},
        "error": "Some settings need a change: see the fields marked below." if errors else None,
        **_choices(),
    }
    return page(request, "list_new.html", context, status)


@router.get("/lists/new", response_class=HTMLResponse, dependencies=[needs(Role.ADMIN)])
def new_list(request: Request) -> Response:
    return _form_page(request, ListSettings(name=""))


@router.post("/lists", name="create_list", dependencies=[needs(Role.ADMIN)])
def create(
    request: Request,
    session: SessionDep,
    form: ListForm,
    slug: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    values, errors = form
    try:
        if errors:
            raise InvalidSettings(errors)
        lst = create_list_with(session, slug.strip(), values)
    except InvalidSettings as exc:
        session.rollback()
        mark_failed(request)
        return _form_page(request, values, slug=slug, errors={**exc.errors, **errors}, status=422)
    request.state.audit_target = ("list", lst.slug)
    return see_other(request, f"/lists/{lst.slug}?done=created")


def list_page(
    request: Request,
    session: Session,
    slug: str,
    *,
    values: ListSettings | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    lst = get_list(session, slug)
    linked = {s.id for s in lst.sources}
    others = all_sources(session)
    context = {
        "section": "lists",
        "list": lst,
        "values": values or ListSettings.of(lst),
        "errors": errors or {},
        "error": error
        or ("Some settings need a change: see the fields marked below." if errors else None),
        "notice": notice,
        "schedule_text": describe_schedule(lst.schedule_cron),
        "sources": sorted(lst.sources, key=lambda s: (s.name, s.id)),
        "unlinked": [s for s in others if s.id not in linked],
        "topics": list_topics(session, lst.id),
        "source_names": {s.id: s.name for s in lst.sources},
        **_choices(),
    }
    return page(request, "list.html", context, status)


@router.get("/lists/{slug}", response_class=HTMLResponse, dependencies=[needs(Role.VIEWER)])
def show_list(
    request: Request, session: SessionDep, slug: Slug, done: str | None = None
) -> Response:
    return list_page(request, session, slug, notice=NOTICES.get(done or ""))


@router.post("/lists/{slug}", name="edit_list", dependencies=[needs(Role.ADMIN)])
def edit(request: Request, session: SessionDep, slug: Slug, form: ListForm) -> Response:
    values, errors = form
    try:
        if errors:
            get_list(session, slug)  # a missing list is a 404 before any field
            raise InvalidSettings(errors)
        lst, changed = update_list(session, slug, asdict(values))
    except InvalidSettings as exc:
        session.rollback()
        mark_failed(request)
        merged = {**exc.errors, **errors}
        return list_page(request, session, slug, values=values, errors=merged, status=422)
    request.state.audit_detail = {"changed": changed}
    return see_other(request, f"/lists/{lst.slug}?done=saved")


def _refused(request: Request, session: Session, slug: str, exc: DigestError) -> Response:
    session.rollback()
    mark_failed(request)
    return list_page(request, session, slug, error=str(exc), status=400)


@router.post("/lists/{slug}/sources", name="link_source", dependencies=[needs(Role.ADMIN)])
def link(request: Request, session: SessionDep, slug: Slug, source_id: SourceIdField) -> Response:
    lst = get_list(session, slug)
    try:
        link_source(session, lst.id, source_id)
    except DigestError as exc:
        return _refused(request, session, slug, exc)
    request.state.audit_detail = {"source_id": source_id}
    return see_other(request, f"/lists/{lst.slug}?done=linked#sources")


@router.post(
    "/lists/{slug}/sources/{source_id}/unlink",
    name="unlink_source",
    dependencies=[needs(Role.ADMIN)],
)
def unlink(
    request: Request,
    session: SessionDep,
    slug: Slug,
    source_id: Annotated[int, Path(ge=1, le=MAX_INT)],
) -> Response:
    lst = get_list(session, slug)
    if not unlink_source(session, lst.id, source_id):
        mark_failed(request)
        return list_page(
            request, session, slug, error="That source does not feed this list.", status=404
        )
    request.state.audit_target = ("list", lst.slug)
    request.state.audit_detail = {"source_id": source_id}
    return see_other(request, f"/lists/{lst.slug}?done=unlinked#sources")


def _terms(text: str) -> list[str]:
    return [t.strip() for t in text.replace("\r", "\n").replace(",", "\n").split("\n") if t.strip()]


@router.post("/lists/{slug}/topics", name="define_topic", dependencies=[needs(Role.ADMIN)])
def topic(
    request: Request,
    session: SessionDep,
    slug: Slug,
    topic_slug: TopicSlug,
    topic_name: Annotated[str, Form(max_length=200)] = "",
    source_ids: Annotated[list[int] | None, Form()] = None,
    categories: Block = "",
    keywords: Block = "",
) -> Response:
    lst = get_list(session, slug)
    try:
        if any(not 1 <= i <= MAX_INT for i in source_ids or []):
            raise DigestError("no such source")
        found = define_topic(
            session,
            lst,
            topic_slug.strip(),
            topic_name.strip() or topic_slug.strip(),
            source_ids=source_ids or [],
            categories=_terms(categories),
            keywords=_terms(keywords),
        )
    except DigestError as exc:
        return _refused(request, session, slug, exc)
    request.state.audit_detail = {"topic": found.slug}
    return see_other(request, f"/lists/{lst.slug}?done=topic#topics")


@router.post(
    "/lists/{slug}/topics/{topic_slug}/delete",
    name="delete_topic",
    dependencies=[needs(Role.ADMIN)],
)
def topic_delete(
    request: Request,
    session: SessionDep,
    slug: Slug,
    topic_slug: Annotated[str, Path(max_length=100)],
) -> Response:
    lst = get_list(session, slug)
    try:
        delete_topic(session, lst, topic_slug)
    except DigestError as exc:
        return _refused(request, session, slug, exc)
    request.state.audit_detail = {"topic": topic_slug}
    return see_other(request, f"/lists/{lst.slug}?done=topic-deleted#topics")

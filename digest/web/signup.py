"""The public sign-up form of a list: GET shows it, POST starts double opt-in.

A post gets one answer whatever the address's state and whether the honeypot was filled in
or the client throttled: the same page, status and work. It only records the request; the
confirmation is mailed after the response (a Celery worker when there is a broker, else this
process's background task), so the relay's speed never shows in the answer.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.delivery.audience import list_editions
from digest.errors import DigestError
from digest.models import MailingList, OptIn
from digest.subscribers.addresses import display_email
from digest.subscribers.lists import find_list
from digest.subscribers.signup import sign_up
from digest.subscribers.throttle import make_throttle
from digest.web.clients import client_ip
from digest.web.deps import SessionDep, SettingsDep, mark_failed
from digest.web.i18n import PageLanguage, carry, language_name, page_language, switcher
from digest.web.security import PAGE_CSP
from digest.web.templating import render, root_path

log = logging.getLogger(__name__)
router = APIRouter()
# Longer values get our own clear error rather than a bare 400.
FIELD_MAX = 10_000


def _list(session: SessionDep, slug: str) -> MailingList:
    lst = find_list(session, slug)
    if lst is None:
        raise HTTPException(404, "no such list")
    return lst


def send_in_background(sf: sessionmaker[Session], request_id: int, settings: Settings) -> None:
    """After the response: hand the request to the workers, or send its confirmation here.
    Whatever fails is logged; the request stays open and the next run (the workers' sweep,
    or this server's next sign-up) picks it up."""
    if settings.broker_url:
        from kombu.exceptions import KombuError

        from workers.tasks import send_confirmations as task  # Celery only with a broker

        try:
            task.delay([request_id])
        except KombuError:
            log.warning("sign-up request %s: not enqueued; the sweep sends it", request_id)
        return
    from digest.delivery.confirmations import send_confirmations
    from digest.delivery.transport_factory import open_transport

    try:
        with open_transport(settings) as transport:
            send_confirmations(sf, transport, settings)  # this one, and any left waiting
    except Exception:
        log.exception("sign-up request %s: confirmation not sent now", request_id)


@router.get("/s/{slug}", response_class=HTMLResponse)
def signup_page(request: Request, slug: str, session: SessionDep) -> Response:
    lst = _list(session, slug)
    language = page_language(request, fallback=lst.language)
    page = render(request, "signup.html", _context(request, lst, language), language=language)
    return _with_script(page)


def _context(request: Request, lst: MailingList, language: PageLanguage) -> dict[str, object]:
    editions = list_editions(lst)
    context: dict[str, object] = {
        "list_name": lst.name,
        "list_description": lst.description,
        # Single opt-in subscribes at once: the answer says so (the same for every address).
        "single_opt_in": lst.opt_in == OptIn.SINGLE,
        "languages": [(code, language_name(code)) for code in editions],
        # The edition offered first: the page's language when the list has that edition.
        "edition": language.code if language.code in editions else editions[0],
        "switcher": switcher(language),
    }
    if not lst.private:
        context["archive_url"] = carry(f"{root_path(request)}/archive/{lst.slug}", language)
    return context


# The sign-up page runs one script of ours: it puts the browser's time zone in the form.
SIGNUP_CSP = PAGE_CSP + "; script-src 'self'"


def _with_script(response: Response) -> Response:
    response.headers["content-security-policy"] = SIGNUP_CSP
    return response


@router.post("/s/{slug}", response_class=HTMLResponse)
def signup(
    request: Request,
    slug: str,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    email: Annotated[str, Form(max_length=FIELD_MAX)],
    name: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    website: Annotated[str, Form(max_length=FIELD_MAX)] = "",  # a honeypot: people leave it empty
    language: Annotated[str, Form(max_length=40)] = "",
    timezone: Annotated[str, Form(max_length=80)] = "",  # filled in by the browser's script
) -> Response:
    lst = _list(session, slug)
    shown_in = page_language(request, fallback=lst.language)  # `language`: the edition asked
    context = _context(request, lst, shown_in)
    try:
        received = sign_up(
            session,
            lst.id,
            email,
            name,
            client=client_ip(request, settings.trusted_proxies),
            bot=bool(website),
            throttle=make_throttle(settings, session),
            settings=settings,
            language=language,
            timezone=timezone,
        )
    except DigestError as exc:
        mark_failed(request)
        return _with_script(
            render(
                request,
                "signup.html",
                {**context, "error": str(exc), "email": email[:320], "name": name[:200]},
                status_code=422,
                language=shown_in,
            )
        )
    if received.request_id is not None:
        # Background tasks run after the response, and the session commits before it.
        sf: sessionmaker[Session] = request.app.state.sessionmaker
        background.add_task(send_in_background, sf, received.request_id, settings)
    sent = {**context, "sent": True, "email": display_email(received.email)}
    return render(request, "signup.html", sent, language=shown_in)

"""The public sign-up form of a list: GET shows it, POST starts double opt-in."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from digest.delivery.transports import open_transport
from digest.errors import DigestError
from digest.models import MailingList
from digest.subscribers.signup import send_confirmation, sign_up
from digest.web.deps import SessionDep, SettingsDep
from digest.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter()


def _list(session: SessionDep, slug: str) -> MailingList:
    lst = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if lst is None:
        raise HTTPException(404, "no such list")
    return lst


@router.get("/s/{slug}", response_class=HTMLResponse)
def signup_page(request: Request, slug: str, session: SessionDep) -> Response:
    lst = _list(session, slug)
    return render(
        request, "signup.html", {"list_name": lst.name, "list_description": lst.description}
    )


@router.post("/s/{slug}", response_class=HTMLResponse)
def signup(
    request: Request,
    slug: str,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)] = "",
    website: Annotated[str, Form(max_length=200)] = "",  # a honeypot: people leave it empty
) -> Response:
    lst = _list(session, slug)
    context = {"list_name": lst.name, "list_description": lst.description}
    if website:
        return render(request, "signup.html", {**context, "sent": True})
    try:
        result = sign_up(session, lst, email, name)
    except DigestError as exc:
        return render(
            request,
            "signup.html",
            {**context, "error": str(exc), "email": email, "name": name},
            status_code=422,
        )
    if result.send_confirmation:
        session.commit()  # the confirmation link must find the row
        with open_transport(settings) as transport:
            outcome = send_confirmation(lst, result, transport, settings)
        if outcome is None or outcome.outcome != "sent":
            log.warning(
                "confirmation to %s not sent: %s",
                result.email,
                outcome.detail if outcome else "no result",
            )
            return render(
                request,
                "signup.html",
                {
                    **context,
                    "error": "We could not send the "
                    "confirmation email just now. Please try again in a few minutes.",
                },
                status_code=503,
            )
    return render(request, "signup.html", {**context, "sent": True, "email": result.email})

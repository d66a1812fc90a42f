"""The public pages every link in a message leads to: unsubscribe, preferences, view online.

GET never changes anything (mail scanners and link previews fetch every URL they see); each
change is a POST to the same URL, which for /u/ is also the RFC 8058 one-click endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from digest import archive
from digest.delivery.audience import list_editions
from digest.errors import DigestError
from digest.models import RECEIVING, Subscription, SubscriptionStatus
from digest.subscribers import actions
from digest.subscribers.addresses import display_email
from digest.subscribers.topics import list_topics, parse_topic_ids, time_zones
from digest.tokens import make_token
from digest.web.deps import SessionDep, link_keys
from digest.web.i18n import PageLanguage, language_headers, language_name, page_language
from digest.web.links import mask_email, subscription_for, view_target
from digest.web.online import issue_web_copy
from digest.web.templating import render, root_path

router = APIRouter()

ONE_CLICK = "One-Click"
Notice = Literal["saved", "unsubscribed", "resubscribed", "unchanged"]
NOTICES = frozenset(get_args(Notice))


def _language(request: Request, subscription: Subscription) -> PageLanguage:
    """The reader's language, else their browser's, else the list's."""
    return page_language(
        request,
        reader=subscription.subscriber.language,
        fallback=subscription.mailing_list.language,
    )


def _page(
    request: Request,
    template: str,
    subscription: Subscription,
    extra: Mapping[str, object] | None = None,
) -> Response:
    context = {**_context(request, subscription), **(extra or {})}
    return render(request, template, context, language=_language(request, subscription))


def _context(request: Request, subscription: Subscription) -> dict[str, object]:
    root, keys = root_path(request), link_keys(request)
    return {
        "brand": subscription.mailing_list.from_name or request.app.state.settings.from_name,
        "list_name": subscription.mailing_list.name,
        "list_description": subscription.mailing_list.description,
        "email": mask_email(display_email(subscription.subscriber.email)),
        "status": subscription.status,
        "preferences_url": f"{root}/p/{make_token('preferences', subscription.id, keys)}",
    }


@router.api_route("/u/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str, session: SessionDep) -> Response:
    subscription = subscription_for(session, "unsubscribe", token, link_keys(request))
    template = "unsubscribe.html" if subscription.status in RECEIVING else "unsubscribed.html"
    return _page(request, template, subscription)


@router.post("/u/{token}")
def unsubscribe(
    request: Request,
    token: str,
    session: SessionDep,
    list_unsubscribe: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
) -> Response:
    subscription = subscription_for(session, "unsubscribe", token, link_keys(request))
    one_click = list_unsubscribe == ONE_CLICK
    actions.unsubscribe(session, subscription.id, via="one-click" if one_click else "web")
    if one_click:
        # RFC 8058: the mail provider posts without cookies and shows nothing; a 200 is all.
        return PlainTextResponse(f"Unsubscribed from {subscription.mailing_list.name}.\n")
    return _page(request, "unsubscribed.html", subscription, {"done": True})


@router.api_route("/p/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def preferences_page(
    request: Request, token: str, session: SessionDep, done: str | None = None
) -> Response:
    subscription = subscription_for(session, "preferences", token, link_keys(request))
    notice = done if done in NOTICES else None  # a hand-edited query string shows nothing
    context: dict[str, object] = {
        "name": subscription.subscriber.name,
        "notice": notice,
        "name_max": actions.NAME_MAX,
    }
    context.update(reader_choices(session, subscription))
    return _page(request, "preferences.html", subscription, context)


def reader_choices(session: SessionDep, subscription: Subscription) -> dict[str, object]:
    """What a reader may choose on the preferences page: the list's editions (each named in
    its own language), time zones, and the list's topics, with their current choice."""
    lst = subscription.mailing_list
    chosen = set(parse_topic_ids(subscription.topic_ids))
    return {
        "languages": [(code, language_name(code)) for code in list_editions(lst)],
        "language": subscription.subscriber.language or "",
        "time_zones": time_zones(),
        "timezone": subscription.subscriber.timezone or "",
        "list_timezone": lst.timezone,
        "topics": [(t.slug, t.name, t.id in chosen) for t in list_topics(session, lst.id)],
    }


@router.post("/p/{token}")
def save_preferences(
    request: Request,
    token: str,
    session: SessionDep,
    action: Annotated[Literal["save", "unsubscribe", "resubscribe"], Form()] = "save",
    name: Annotated[str | None, Form(max_length=1000)] = None,
    language: Annotated[str | None, Form(max_length=40)] = None,
    timezone: Annotated[str | None, Form(max_length=80)] = None,
    topic: Annotated[list[str] | None, Form(max_length=100)] = None,
    topics_shown: Annotated[str | None, Form(max_length=1)] = None,
) -> Response:
    subscription = subscription_for(session, "preferences", token, link_keys(request))
    notice: Notice
    if action == "unsubscribe":
        changed = actions.unsubscribe(session, subscription.id, via="preferences")
        notice = "unsubscribed" if changed else "unchanged"
    elif action == "resubscribe":
        changed = actions.resubscribe(session, subscription.id, via="preferences")
        notice = "resubscribed" if changed else "unchanged"
    else:
        # Topics: the boxes ticked, when the form showed them (none ticked: everything).
        try:
            actions.update_preferences(
                session,
                subscription.id,
                name=name,
                language=language,
                timezone=timezone,
                topics=(topic or []) if topics_shown else None,
            )
        except DigestError as exc:  # a value no form offers: nothing is changed
            raise HTTPException(400, str(exc)) from None
        notice = "saved"
    # Post/redirect/get: reloading the page does not post the form again.
    return RedirectResponse(f"{root_path(request)}/p/{token}?done={notice}", status_code=303)


@router.api_route("/c/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def confirm_page(request: Request, token: str, session: SessionDep) -> Response:
    subscription = subscription_for(session, "confirm", token, link_keys(request))
    return _page(request, "confirm.html", subscription)


@router.post("/c/{token}", response_class=HTMLResponse)
def confirm(request: Request, token: str, session: SessionDep) -> Response:
    subscription = subscription_for(session, "confirm", token, link_keys(request))
    confirmed = (
        actions.confirm(session, subscription.id)
        or subscription.status == SubscriptionStatus.CONFIRMED
    )
    # A stopped subscription comes back only through a confirmation mailed after it stopped.
    outcome = {"done": True} if confirmed else {"stale": True}
    return _page(request, "confirm.html", subscription, outcome)


@router.api_route("/v/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def view_online(request: Request, token: str, session: SessionDep) -> Response:
    """The copy the link was mailed in: the reader's own variant (edition and topics) when
    the token names one; a link mailed before variants names the issue, shown as the archive
    shows it (the edition of the browser's language when the list has editions)."""
    issue, variant = view_target(session, token, link_keys(request))
    negotiated = False
    if variant is None:
        lst = issue.mailing_list
        language = page_language(request, fallback=lst.language)
        variant = archive.edition_copies(session, lst, [issue.id], language.code).get(issue.id)
        negotiated = variant is not None and language.negotiated
    html = issue_web_copy(issue, variant, root=root_path(request), view_path=f"/v/{token}")
    response = HTMLResponse(html)
    if variant is None:
        return response
    return language_headers(response, PageLanguage(variant.language, negotiated=negotiated))


@router.get("/links", response_class=HTMLResponse)
def links_help(request: Request) -> Response:
    """Where the web copy's unsubscribe and preferences links lead: they are personal."""
    return render(request, "links.html", {}, language=page_language(request))

"""The public archive of a list's sent issues, as pages and as an Atom feed.

Everything here is public and the same for every visitor: the issue is its frozen HTML with the
per-recipient slots made neutral (digest.web.online), exactly as the view-online page shows it.
A private or unknown list, and any issue that did not go out, answer 404 alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from lxml import etree
from lxml.builder import ElementMaker

from digest import archive
from digest.delivery.audience import edition_of, list_editions
from digest.models import Issue, IssueVariant, MailingList
from digest.web.deps import SessionDep
from digest.web.i18n import PageLanguage, carry, language_headers, page_language, switcher
from digest.web.online import issue_web_copy
from digest.web.params import BeforeNumber, IssueNumber, Slug
from digest.web.templating import render, root_path

router = APIRouter()

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_ENTRIES = 20
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _public(session: SessionDep, slug: str) -> MailingList:
    lst = archive.public_list(session, slug)
    if lst is None:
        raise HTTPException(status_code=404, detail="not-found")
    return lst


def _when(issue: Issue) -> datetime:
    return issue.sent_at or issue.approved_at or issue.created_at


def _copies(
    session: SessionDep, lst: MailingList, issues: Sequence[Issue], language: PageLanguage
) -> dict[int, IssueVariant]:
    return archive.edition_copies(session, lst, [i.id for i in issues], language.code)


@router.api_route("/archive/{slug}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def archive_page(
    request: Request,
    slug: Slug,
    session: SessionDep,
    before: BeforeNumber = None,
) -> Response:
    lst = _public(session, slug)
    language = page_language(request, fallback=lst.language)
    issues = archive.published_issues(session, lst, before=before)
    copies = _copies(session, lst, issues, language)
    more = len(issues) == archive.PAGE_SIZE and issues[-1].number > 1
    page = f"{root_path(request)}/archive/{lst.slug}"
    return render(
        request,
        "archive.html",
        {
            "brand": lst.from_name or request.app.state.settings.from_name,
            "list_name": lst.name,
            "list_description": lst.description,
            "issues": [
                {
                    "url": carry(f"{page}/{i.number}", language),
                    "subject": copies[i.id].subject if i.id in copies else i.subject,
                    "when": _when(i),
                    "preheader": i.preheader,
                }
                for i in issues
            ],
            "older_url": carry(f"{page}?before={issues[-1].number}", language) if more else None,
            "feed_url": carry(f"{page}/feed.atom", language),
            "signup_url": carry(f"{root_path(request)}/s/{lst.slug}", language),
            "switcher": switcher(language),
        },
        language=language,
    )


@router.api_route("/archive/{slug}/feed.atom", methods=["GET", "HEAD"])
def archive_feed(request: Request, slug: Slug, session: SessionDep) -> Response:
    lst = _public(session, slug)
    language = page_language(request, fallback=lst.language)
    issues = archive.published_issues(session, lst, limit=FEED_ENTRIES)
    copies = _copies(session, lst, issues, language)
    base = request.app.state.settings.public_url.rstrip("/") + root_path(request)
    page = f"{base}/archive/{lst.slug}"
    # An edition's feed names its language in its links, so a reader opens that edition; a
    # language the list has no edition in reads the main one, and the feed says so.
    main, edition = list_editions(lst)[0], edition_of(language.code, lst)
    lang = "" if edition == main else f"?{urlencode({'lang': edition})}"
    atom = ElementMaker(namespace=ATOM_NS, nsmap={None: ATOM_NS})
    updated = max((_when(i) for i in issues), default=lst.created_at)
    feed = atom.feed(
        atom.id(page + lang),
        atom.title(lst.name),
        atom.updated(_stamp(updated)),
        atom.link(rel="self", type="application/atom+xml", href=f"{page}/feed.atom{lang}"),
        atom.link(rel="alternate", type="text/html", href=page + lang),
        atom.author(atom.name(lst.from_name or request.app.state.settings.from_name)),
    )
    feed.set(XML_LANG, edition)
    if lst.description:
        feed.append(atom.subtitle(lst.description))
    for issue in issues:
        url = f"{page}/{issue.number}"
        copy = copies.get(issue.id)
        entry = atom.entry(
            atom.id(url + lang),
            atom.title(copy.subject if copy else issue.subject),
            atom.updated(_stamp(_when(issue))),
            atom.published(_stamp(_when(issue))),
            atom.link(rel="alternate", type="text/html", href=url + lang),
        )
        if copy is not None:
            entry.set(XML_LANG, copy.language)
        if issue.preheader:
            entry.append(atom.summary(issue.preheader))
        feed.append(entry)
    # lxml escapes every text and attribute: a subject is data, never markup.
    body = etree.tostring(feed, xml_declaration=True, encoding="utf-8")
    response = Response(body, media_type="application/atom+xml; charset=utf-8")
    return language_headers(response, language)


@router.api_route("/archive/{slug}/{number}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def archived_issue(
    request: Request, slug: Slug, number: IssueNumber, session: SessionDep
) -> Response:
    lst = _public(session, slug)
    issue = archive.published_issue(session, lst, number)
    if issue is None:
        raise HTTPException(status_code=404, detail="not-found")
    language = page_language(request, fallback=lst.language)
    copy = _copies(session, lst, [issue], language).get(issue.id)
    path = f"/archive/{lst.slug}/{issue.number}"
    if copy is not None and copy.language != list_editions(lst)[0]:
        path += f"?{urlencode({'lang': copy.language})}"  # the edition stays on reload
    html = issue_web_copy(issue, copy, root=root_path(request), view_path=path)
    response = HTMLResponse(html)
    return language_headers(response, replace(language, code=copy.language) if copy else language)


def _stamp(moment: datetime) -> str:
    """RFC 3339 in UTC: the store keeps naive UTC datetimes."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

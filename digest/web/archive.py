"""The public archive of a list's sent issues, as pages and as an Atom feed.

Everything here is public and the same for every visitor: the issue is its frozen HTML with the
per-recipient slots made neutral (digest.web.online), exactly as the view-online page shows it.
A private or unknown list, and any issue that did not go out, answer 404 alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from lxml import etree
from lxml.builder import ElementMaker

from digest import archive
from digest.models import Issue, MailingList
from digest.web.deps import SessionDep
from digest.web.online import issue_web_copy
from digest.web.params import BeforeNumber, IssueNumber, Slug
from digest.web.templating import render, root_path

router = APIRouter()

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_ENTRIES = 20


def _public(session: SessionDep, slug: str) -> MailingList:
    lst = archive.public_list(session, slug)
    if lst is None:
        raise HTTPException(status_code=404, detail="not-found")
    return lst


def _when(issue: Issue) -> datetime:
    return issue.sent_at or issue.approved_at or issue.created_at


@router.api_route("/archive/{slug}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def archive_page(
    request: Request,
    slug: Slug,
    session: SessionDep,
    before: BeforeNumber = None,
) -> Response:
    lst = _public(session, slug)
    issues = archive.published_issues(session, lst, before=before)
    more = len(issues) == archive.PAGE_SIZE and issues[-1].number > 1
    root = root_path(request)
    return render(
        request,
        "archive.html",
        {
            "brand": lst.from_name or request.app.state.settings.from_name,
            "list_name": lst.name,
            "list_description": lst.description,
            "issues": [
                {
                    "number": i.number,
                    "subject": i.subject,
                    "when": _when(i),
                    "preheader": i.preheader,
                }
                for i in issues
            ],
            "older_url": f"{root}/archive/{lst.slug}?before={issues[-1].number}" if more else None,
            "feed_url": f"{root}/archive/{lst.slug}/feed.atom",
            "signup_url": f"{root}/s/{lst.slug}",
            "issue_url": f"{root}/archive/{lst.slug}/",
        },
    )


@router.api_route("/archive/{slug}/feed.atom", methods=["GET", "HEAD"])
def archive_feed(request: Request, slug: Slug, session: SessionDep) -> Response:
    lst = _public(session, slug)
    issues = archive.published_issues(session, lst, limit=FEED_ENTRIES)
    base = request.app.state.settings.public_url.rstrip("/") + root_path(request)
    page = f"{base}/archive/{lst.slug}"
    atom = ElementMaker(namespace=ATOM_NS, nsmap={None: ATOM_NS})
    updated = max((_when(i) for i in issues), default=lst.created_at)
    feed = atom.feed(
        atom.id(page),
        atom.title(lst.name),
        atom.updated(_stamp(updated)),
        atom.link(rel="self", type="application/atom+xml", href=f"{page}/feed.atom"),
        atom.link(rel="alternate", type="text/html", href=page),
        atom.author(atom.name(lst.from_name or request.app.state.settings.from_name)),
    )
    if lst.description:
        feed.append(atom.subtitle(lst.description))
    for issue in issues:
        url = f"{page}/{issue.number}"
        entry = atom.entry(
            atom.id(url),
            atom.title(issue.subject),
            atom.updated(_stamp(_when(issue))),
            atom.published(_stamp(_when(issue))),
            atom.link(rel="alternate", type="text/html", href=url),
        )
        if issue.preheader:
            entry.append(atom.summary(issue.preheader))
        feed.append(entry)
    # lxml escapes every text and attribute: a subject is data, never markup.
    body = etree.tostring(feed, xml_declaration=True, encoding="utf-8")
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.api_route("/archive/{slug}/{number}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def archived_issue(
    request: Request, slug: Slug, number: IssueNumber, session: SessionDep
) -> Response:
    lst = _public(session, slug)
    issue = archive.published_issue(session, lst, number)
    if issue is None:
        raise HTTPException(status_code=404, detail="not-found")
    root = root_path(request)
    html = issue_web_copy(issue, root=root, view_path=f"/archive/{lst.slug}/{issue.number}")
    return HTMLResponse(html)


def _stamp(moment: datetime) -> str:
    """RFC 3339 in UTC: the store keeps naive UTC datetimes."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

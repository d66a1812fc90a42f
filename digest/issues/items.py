"""An editor's hand on a draft's items: a title and summary of their own, or an item added by
hand. Both go through the collector's own normalising (one-line titles, the summary allow-list,
http(s) links only), so what a reader gets from an editor is held to what a source gets.

The edit is kept on the issue item, not the item: a re-collect updates the item, and another
list's issue keeps the source's words. A hand-added item is an item of the list's manual
source (`manual:<slug>`, made on first use and linked to the list), so it is an item like any
other: once in an issue of the list, a discarded draft gives it back to the pool.
"""

from __future__ import annotations

import html

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import DigestError, NotFound
from digest.issues.compose import follow_items, month_label
from digest.issues.lifecycle import get_issue
from digest.models import (
    Grouping,
    Issue,
    IssueItem,
    IssueStatus,
    Item,
    ListSource,
    MailingList,
    Source,
    SourceKind,
    utcnow,
)
from digest.sources.guids import item_guid
from digest.sources.parsed import ParsedItem
from digest.sources.store import store_items
from digest.sources.summaries import sanitise_summary
from digest.sources.text import TITLE_MAX, clean_title, one_line
from digest.urls import canonical_url, safe_url

SUMMARY_MAX = 5000  # characters of plain text an editor writes
GROUP_MAX = 200  # IssueItem.group_label
URL_MAX = 2000


def _draft(session: Session, issue_id: int) -> Issue:
    issue = get_issue(session, issue_id, for_update=True)
    if issue.status != IssueStatus.DRAFT:
        raise DigestError(f"issue {issue_id} is {issue.status}; only a draft's items are edited")
    return issue


def clean_item_title(raw: str) -> str:
    if len(raw) > TITLE_MAX * 4:
        raise DigestError(f"a title is at most {TITLE_MAX} characters")
    title = clean_title(raw, is_html=False)
    if not title:
        raise DigestError("the title cannot be empty")
    if len(one_line(raw)) > TITLE_MAX:
        raise DigestError(f"a title is at most {TITLE_MAX} characters")
    return title


def summary_from_text(raw: str, base: str | None) -> tuple[str, str]:
    """An editor's plain-text summary as (safe HTML, text): escaped, a blank line a new
    paragraph, then the collector's allow-list like any source's summary."""
    if len(raw) > SUMMARY_MAX:
        raise DigestError(f"a summary is at most {SUMMARY_MAX} characters")
    paragraphs = [" ".join(p.split()) for p in raw.replace("\r\n", "\n").split("\n\n")]
    fragment = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs if p)
    return sanitise_summary(fragment, base)


def _issue_item(issue: Issue, item_id: int) -> IssueItem:
    found = next((ii for ii in issue.issue_items if ii.item_id == item_id), None)
    if found is None:
        raise NotFound(f"item {item_id} is not in issue {issue.id}")
    return found


def edit_item(
    session: Session, issue_id: int, item_id: int, *, title: str, summary: str
) -> IssueItem:
    """Give a draft's item this issue's own title and summary (plain text)."""
    issue = _draft(session, issue_id)
    ii = _issue_item(issue, item_id)
    ii.title = clean_item_title(title)
    ii.summary_html, ii.summary_text = summary_from_text(summary, ii.item.url)
    session.flush()
    return ii


def manual_source(session: Session, lst: MailingList) -> Source:
    """The list's source of items added by hand (never fetched), made on first use."""
    url = f"manual:{lst.slug}"
    source = session.scalar(select(Source).where(Source.url == url))
    if source is None:
        source = Source(name=f"{lst.name} (added by hand)"[:200], url=url, kind=SourceKind.MANUAL)
        session.add(source)
        session.flush()
    linked = session.get(ListSource, (lst.id, source.id))
    if linked is None:
        session.add(ListSource(list_id=lst.id, source_id=source.id))
        session.flush()
    return source


def _group(issue: Issue, raw: str) -> str:
    group = one_line(raw)
    if len(group) > GROUP_MAX:
        raise DigestError(f"a group is at most {GROUP_MAX} characters")
    if group:
        return group
    items = sorted(issue.issue_items, key=lambda ii: ii.position)
    if items:
        return items[-1].group_label  # with the last item: no heading of its own
    lst = issue.mailing_list
    return month_label(utcnow(), lst) if lst.grouping == Grouping.MONTH else ""


def add_item(
    session: Session,
    issue_id: int,
    *,
    title: str,
    url: str,
    summary: str = "",
    group: str = "",
) -> IssueItem:
    """Add an item by hand to a draft, at the end of its group (or of the issue)."""
    issue = _draft(session, issue_id)
    clean_title_ = clean_item_title(title)
    link = safe_url(url.strip()) if len(url) <= URL_MAX else None
    if link is None:
        raise DigestError("the link must be an http or https URL with a host")
    summary_html, summary_text = summary_from_text(summary, link)
    label = _group(issue, group)
    lst = issue.mailing_list
    source = manual_source(session, lst)
    now = utcnow()
    parsed = ParsedItem(
        guid=item_guid(None, link, clean_title_, None),
        title=clean_title_,
        url=link,
        summary_html=summary_html,
        summary_text=summary_text,
    )
    store_items(session, source, [parsed], now)
    # The same page may be stored already (collected from a source, or added before).
    item = session.scalar(select(Item).where(Item.canonical_url == canonical_url(link)))
    if item is None:  # a near-identical title of another source was taken as the same news
        item = session.scalar(
            select(Item).where(Item.source_id == source.id, Item.guid == parsed.guid)
        )
    if item is None:
        raise DigestError("that item looks like one already stored: add it from its source")
    taken = session.scalar(
        select(Issue.number)
        .join(IssueItem, IssueItem.issue_id == Issue.id)
        .where(IssueItem.list_id == lst.id, IssueItem.item_id == item.id)
    )
    if taken is not None:
        raise DigestError(f"{link} is already in issue #{taken} of this list")
    items = sorted(issue.issue_items, key=lambda ii: ii.position)
    at = len(items)
    for i, existing in enumerate(items):
        if existing.group_label == label:
            at = i + 1
    added = IssueItem(
        issue_id=issue.id, list_id=lst.id, item_id=item.id, position=at, group_label=label
    )
    if item.source_id != source.id:  # stored from elsewhere: the editor's words for it here
        added.title = clean_title_
        added.summary_html, added.summary_text = (
            (summary_html, summary_text) if summary.strip() else (None, None)
        )
    items.insert(at, added)
    issue.issue_items.append(added)
    for i, ii in enumerate(items):
        ii.position = i
    follow_items(issue, lst, len(items) - 1)
    session.flush()
    return added

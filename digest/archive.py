"""The public archive: a list's issues that went out, for anyone, unless the list is private.

Only issues that reached subscribers (sending or sent) are shown; drafts, approved-but-unsent,
paused and cancelled ones never are, whatever number a visitor tries. A private list and a
missing one look the same to a visitor (None), so the archive does not reveal which lists exist.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.db import MAX_INT
from digest.delivery.audience import list_editions
from digest.models import Issue, IssueStatus, IssueVariant, MailingList

PUBLISHED = (IssueStatus.SENDING, IssueStatus.SENT)
PAGE_SIZE = 24


def public_list(session: Session, slug: str) -> MailingList | None:
    found = session.scalar(select(MailingList).where(MailingList.slug == slug))
    return None if found is None or found.private else found


def published_issues(
    session: Session, lst: MailingList, *, before: int | None = None, limit: int = PAGE_SIZE
) -> Sequence[Issue]:
    """Newest first, a page at a time: `before` is the last number of the previous page."""
    stmt = (
        select(Issue)
        .where(Issue.list_id == lst.id, Issue.status.in_(PUBLISHED), Issue.html.is_not(None))
        .order_by(Issue.number.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(Issue.number < before)
    return session.scalars(stmt).all()


def published_issue(session: Session, lst: MailingList, number: int) -> Issue | None:
    if not 0 < number <= MAX_INT:
        return None
    issue = session.scalar(select(Issue).where(Issue.list_id == lst.id, Issue.number == number))
    if issue is None or issue.status not in PUBLISHED or issue.html is None:
        return None
    return issue


def edition_copies(
    session: Session, lst: MailingList, issue_ids: Sequence[int], language: str
) -> dict[int, IssueVariant]:
    """The copy each issue is shown in to a visitor reading `language`, when the list has
    editions: that edition's full variant (every topic) when the issue has one, else the
    main edition's (the issue's own rendering holds every edition's items). A list without
    editions shows the issue itself: no entry."""
    editions = list_editions(lst)
    if len(editions) == 1 or not issue_ids:
        return {}
    wanted = [editions[0]] if language == editions[0] else [editions[0], language]
    rows = session.scalars(
        select(IssueVariant).where(
            IssueVariant.issue_id.in_(issue_ids),
            IssueVariant.language.in_(wanted),
            IssueVariant.topic_ids == "",
            IssueVariant.html.is_not(None),
        )
    )
    found: dict[int, IssueVariant] = {}
    for variant in rows:  # the page's language over the main edition
        if variant.issue_id not in found or variant.language == language:
            found[variant.issue_id] = variant
    return found

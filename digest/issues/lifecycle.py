"""The issue lifecycle: an editor edits a draft, approves it; sending is paused, resumed, cancelled.

draft -> approved -> sending -> sent; approved -> draft; sending <-> paused; any unsent state
-> cancelled.
Status is the control plane: senders check it before each batch.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from digest.db import MAX_INT
from digest.errors import DigestError, NotFound
from digest.issues.compose import follow_items
from digest.metrics import metrics
from digest.models import Issue, IssueItem, IssueStatus, IssueVariant, utcnow


def get_issue(session: Session, issue_id: int, *, for_update: bool = False) -> Issue:
    if not 0 < issue_id <= MAX_INT:  # no row, and PostgreSQL would refuse to compare it
        raise NotFound(f"no issue {issue_id}")
    stmt = select(Issue).where(Issue.id == issue_id)
    if for_update:
        stmt = stmt.with_for_update()
    issue = session.scalar(stmt)
    if issue is None:
        raise NotFound(f"no issue {issue_id}")
    return issue


# Sending, or paused: what `resume` takes (a sending one whose sender stopped restarts).
RESUMABLE = (IssueStatus.PAUSED, IssueStatus.SENDING)
# Not sent yet: what `cancel` takes.
CANCELLABLE = (IssueStatus.DRAFT, IssueStatus.APPROVED, IssueStatus.SENDING, IssueStatus.PAUSED)


def issue_status(session: Session, issue_id: int) -> IssueStatus | None:
    """The issue's status now, in one small query (None: no such issue)."""
    return session.scalar(select(Issue.status).where(Issue.id == issue_id))


def issue_ids_with_status(session: Session, status: IssueStatus) -> list[int]:
    return list(session.scalars(select(Issue.id).where(Issue.status == status)))


def _require(issue: Issue, *allowed: IssueStatus) -> None:
    if issue.status not in allowed:
        raise DigestError(
            f"issue {issue.id} is {issue.status}; this needs it to be {' or '.join(allowed)}"
        )


def _items(issue: Issue) -> list[IssueItem]:
    return sorted(issue.issue_items, key=lambda ii: ii.position)


def drop_item(session: Session, issue_id: int, item_id: int) -> None:
    """Take an item out of a draft; it is not offered again (the next issue starts after this)."""
    issue = get_issue(session, issue_id)
    _require(issue, IssueStatus.DRAFT)
    items = _items(issue)
    target = next((ii for ii in items if ii.item_id == item_id), None)
    if target is None:
        raise NotFound(f"item {item_id} is not in issue {issue_id}")
    issue.issue_items.remove(target)
    session.flush()
    _renumber([ii for ii in items if ii is not target])
    follow_items(issue, issue.mailing_list, len(items))
    session.flush()


def move_item(session: Session, issue_id: int, item_id: int, position: int) -> None:
    """Move an item to a 0-based position; items keep their group labels."""
    issue = get_issue(session, issue_id)
    _require(issue, IssueStatus.DRAFT)
    items = _items(issue)
    target = next((ii for ii in items if ii.item_id == item_id), None)
    if target is None:
        raise NotFound(f"item {item_id} is not in issue {issue_id}")
    if not 0 <= position < len(items):
        raise DigestError(f"position must be between 0 and {len(items) - 1}")
    items.remove(target)
    items.insert(position, target)
    _renumber(items)
    session.flush()


def _renumber(items: list[IssueItem]) -> None:
    for i, ii in enumerate(items):
        ii.position = i


def edit_draft(
    session: Session,
    issue_id: int,
    *,
    intro: str | None = None,
    subject: str | None = None,
    preheader: str | None = None,
) -> Issue:
    issue = get_issue(session, issue_id)
    _require(issue, IssueStatus.DRAFT)
    if subject is not None:
        subject = " ".join(subject.split())
        if not subject:
            raise DigestError("the subject cannot be empty")
        issue.subject = subject
    if preheader is not None:
        issue.preheader = " ".join(preheader.split())
    if intro is not None:
        issue.intro = intro.strip()
    session.flush()
    return issue


def discard_draft(session: Session, issue_id: int) -> None:
    """Delete a draft; its items are free for the next issue."""
    issue = get_issue(session, issue_id)
    _require(issue, IssueStatus.DRAFT)
    session.delete(issue)
    session.flush()


def mark_approved(session: Session, issue_id: int) -> Issue:
    issue = get_issue(session, issue_id, for_update=True)
    _require(issue, IssueStatus.DRAFT)
    if not issue.issue_items:
        raise DigestError(f"issue {issue_id} has no items left")
    issue.status = IssueStatus.APPROVED
    issue.approved_at = utcnow()
    session.flush()
    return issue


def mark_sending(session: Session, issue_id: int) -> Issue:
    """Approved -> sending (`digest.pipeline.start_sending` plans its deliveries with it). A
    paused issue goes on with `resume`, which also clears its count of transport errors."""
    issue = get_issue(session, issue_id, for_update=True)
    _require(issue, IssueStatus.APPROVED)
    issue.status = IssueStatus.SENDING
    session.flush()
    return issue


def reopen_sent(session: Session, issue_id: int) -> Issue:
    """Sent -> sending again, to deliver the same frozen issue to those who have no delivery
    of it yet (`digest.pipeline.send_to_the_rest` plans them). `sent_at` keeps the first send."""
    issue = get_issue(session, issue_id, for_update=True)
    _require(issue, IssueStatus.SENT)
    if issue.message_template is None:
        raise DigestError(f"issue {issue_id} has no frozen message to send again")
    issue.status = IssueStatus.SENDING
    session.flush()
    return issue


def pause(session: Session, issue_id: int) -> Issue:
    issue = get_issue(session, issue_id, for_update=True)
    _require(issue, IssueStatus.SENDING, IssueStatus.PAUSED)
    if issue.status == IssueStatus.SENDING:
        metrics().pauses.labels(reason="manual").inc()
    issue.status = IssueStatus.PAUSED
    session.flush()
    return issue


def resume(session: Session, issue_id: int) -> Issue:
    issue = get_issue(session, issue_id, for_update=True)
    _require(issue, *RESUMABLE)
    issue.status = IssueStatus.SENDING
    issue.consecutive_errors = 0
    session.flush()
    return issue


def return_to_draft(session: Session, issue_id: int) -> Issue:
    """Approved -> draft, to edit it again: what was frozen at approval is thrown away (the
    next approval renders afresh, with a new slot marker). Nothing has been planned yet."""
    issue = get_issue(session, issue_id, for_update=True)
    _require(issue, IssueStatus.APPROVED)
    issue.status = IssueStatus.DRAFT
    issue.approved_at = None
    issue.send_at = None  # a draft is never sent by a schedule: approve and schedule again
    issue.html = issue.text = issue.slot_marker = None
    issue.message_template = None
    issue.render_warnings = []
    session.execute(delete(IssueVariant).where(IssueVariant.issue_id == issue.id))
    session.flush()
    return issue


def cancel(session: Session, issue_id: int) -> Issue:
    """Nothing more is sent; the issue's items go back to the pool, so the list's next issue
    offers them again (the issue keeps its frozen copy, and its deliveries their record)."""
    issue = get_issue(session, issue_id, for_update=True)
    _require(issue, *CANCELLABLE)
    issue.status = IssueStatus.CANCELLED
    issue.send_at = None
    issue.issue_items.clear()
    session.flush()
    return issue

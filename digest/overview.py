"""The listing queries: issues, lists, sources and subscribers as plain rows, one query
function each for the CLI, the editor's pages and the API.

A handful of grouped queries per page (never one per row), read-only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from digest.config import Settings
from digest.delivery.ledger import Progress, progress_by_issue
from digest.models import (
    Issue,
    IssueItem,
    IssueStatus,
    Item,
    ListSource,
    MailingList,
    Source,
    SourceKind,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from digest.scheduled import OverdueRow, overdue_scheduled, overdue_sends

Health = Literal["ok", "failing", "new", "manual"]


@dataclass(frozen=True, slots=True)
class IssueRow:
    id: int
    list_slug: str
    list_name: str
    number: int
    status: IssueStatus
    subject: str
    items: int
    created_at: datetime
    approved_at: datetime | None
    sent_at: datetime | None
    progress: Progress
    send_at: datetime | None = None  # an approved issue's scheduled send (naive UTC)
    timezone: str = "UTC"  # its list's, to show times in


@dataclass(frozen=True, slots=True)
class ItemRow:
    item_id: int
    position: int
    group: str
    title: str
    url: str | None
    source: str
    published_at: datetime | None
    summary: str = ""  # plain text, as the issue shows it
    edited: bool = False  # the editor gave it this issue's own title or summary


@dataclass(frozen=True, slots=True)
class ListRow:
    id: int
    slug: str
    name: str
    description: str
    schedule_cron: str
    timezone: str
    subscribers: dict[str, int]  # by SubscriptionStatus value, every status present
    sources: int
    last_issue: IssueRow | None
    draft_issue_id: int | None
    postal_address: str = ""


@dataclass(frozen=True, slots=True)
class SourceRow:
    id: int
    name: str
    url: str
    kind: SourceKind
    health: Health
    lists: list[str]
    items: int
    last_fetched_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    next_fetch_at: datetime | None
    enabled: bool = True
    language: str | None = None
    fetch_interval_minutes: int = 60


def _item_counts(session: Session, issue_ids: Sequence[int]) -> dict[int, int]:
    if not issue_ids:
        return {}
    rows = session.execute(
        select(IssueItem.issue_id, func.count())
        .where(IssueItem.issue_id.in_(issue_ids))
        .group_by(IssueItem.issue_id)
    )
    return {int(issue_id): int(n) for issue_id, n in rows}


def _rows(session: Session, issues: Sequence[Issue]) -> list[IssueRow]:
    ids = [i.id for i in issues]
    items = _item_counts(session, ids)
    progress = progress_by_issue(session, ids)
    return [
        IssueRow(
            id=i.id,
            list_slug=i.mailing_list.slug,
            list_name=i.mailing_list.name,
            number=i.number,
            status=i.status,
            subject=i.subject,
            items=items.get(i.id, 0),
            created_at=i.created_at,
            approved_at=i.approved_at,
            sent_at=i.sent_at,
            progress=progress[i.id],
            send_at=i.send_at if i.status == IssueStatus.APPROVED else None,
            timezone=i.mailing_list.timezone,
        )
        for i in issues
    ]


def issue_rows(
    session: Session,
    *,
    list_id: int | None = None,
    status: IssueStatus | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[IssueRow]:
    """Issues, newest first."""
    stmt = select(Issue).options(selectinload(Issue.mailing_list))
    if list_id is not None:
        stmt = stmt.where(Issue.list_id == list_id)
    if status is not None:
        stmt = stmt.where(Issue.status == status)
    issues = session.scalars(stmt.order_by(Issue.id.desc()).limit(limit).offset(offset)).all()
    return _rows(session, issues)


def issue_row(session: Session, issue: Issue) -> IssueRow:
    return _rows(session, [issue])[0]


def issue_items(session: Session, issue_id: int) -> list[ItemRow]:
    rows = session.execute(
        select(IssueItem, Item, Source.name)
        .join(Item, Item.id == IssueItem.item_id)
        .join(Source, Source.id == Item.source_id)
        .where(IssueItem.issue_id == issue_id)
        .order_by(IssueItem.position)
    )
    return [
        ItemRow(
            ii.item_id,
            ii.position,
            ii.group_label,
            item.title if ii.title is None else ii.title,
            item.url,
            name,
            item.published_at,
            item.summary_text if ii.summary_html is None else (ii.summary_text or ""),
            ii.title is not None or ii.summary_html is not None,
        )
        for ii, item, name in rows
    ]


def _pairs(session: Session, stmt: Select[int, int]) -> dict[int, int]:
    return {int(key): int(value) for key, value in session.execute(stmt)}


def list_rows(session: Session) -> list[ListRow]:
    lists = session.scalars(select(MailingList).order_by(MailingList.name)).all()
    counts: dict[int, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys((s.value for s in SubscriptionStatus), 0)
    )
    for list_id, status, n in session.execute(
        select(Subscription.list_id, Subscription.status, func.count()).group_by(
            Subscription.list_id, Subscription.status
        )
    ):
        counts[int(list_id)][SubscriptionStatus(status).value] = int(n)
    sources = _pairs(session, select(ListSource.list_id, func.count()).group_by(ListSource.list_id))
    latest_ids = select(func.max(Issue.id)).group_by(Issue.list_id)
    latest = session.scalars(
        select(Issue).options(selectinload(Issue.mailing_list)).where(Issue.id.in_(latest_ids))
    ).all()
    last = {row.list_slug: row for row in _rows(session, latest)}
    drafts = _pairs(
        session, select(Issue.list_id, Issue.id).where(Issue.status == IssueStatus.DRAFT)
    )
    return [
        ListRow(
            id=lst.id,
            slug=lst.slug,
            name=lst.name,
            description=lst.description,
            schedule_cron=lst.schedule_cron,
            timezone=lst.timezone,
            subscribers=counts[lst.id],
            sources=int(sources.get(lst.id, 0)),
            last_issue=last.get(lst.slug),
            draft_issue_id=drafts.get(lst.id),
            postal_address=lst.postal_address,
        )
        for lst in lists
    ]


def health(source: Source) -> Health:
    if source.kind == SourceKind.MANUAL:
        return "manual"
    if source.consecutive_failures:
        return "failing"
    if source.last_success_at is None:
        return "new"
    return "ok"


def source_rows(session: Session, source_id: int | None = None) -> list[SourceRow]:
    """Every source (or the one with this id) with its health, lists and item count."""
    query = select(Source).order_by(Source.name, Source.id)
    counted = select(Item.source_id, func.count()).group_by(Item.source_id)
    linked = (
        select(ListSource.source_id, MailingList.slug)
        .join(MailingList, MailingList.id == ListSource.list_id)
        .order_by(MailingList.slug)
    )
    if source_id is not None:
        query = query.where(Source.id == source_id)
        counted = counted.where(Item.source_id == source_id)
        linked = linked.where(ListSource.source_id == source_id)
    sources = session.scalars(query).all()
    items = _pairs(session, counted)
    lists: dict[int, list[str]] = defaultdict(list)
    for linked_id, slug in session.execute(linked):
        lists[int(linked_id)].append(slug)
    return [
        SourceRow(
            id=s.id,
            name=s.name,
            url=s.url,
            kind=s.kind,
            health=health(s),
            lists=lists[s.id],
            items=int(items.get(s.id, 0)),
            last_fetched_at=s.last_fetched_at,
            last_success_at=s.last_success_at,
            last_error=s.last_error,
            consecutive_failures=s.consecutive_failures or 0,
            next_fetch_at=s.next_fetch_at,
            enabled=s.enabled,
            language=s.language,
            fetch_interval_minutes=s.fetch_interval_minutes,
        )
        for s in sources
    ]


def overdue_rows(session: Session, settings: Settings) -> list[OverdueRow]:
    """Scheduled issues overdue (as `digest issues overdue` lists them), and approved issues
    whose scheduled send has not started, oldest first."""
    now, minutes = utcnow(), settings.schedule_overdue_minutes
    rows = [*overdue_scheduled(session, now, minutes), *overdue_sends(session, now, minutes)]
    return sorted(rows, key=lambda row: row.fire_at)


@dataclass(frozen=True, slots=True)
class SubscriberRow:
    email: str  # as stored (IDNA domain); the edges show `display_email`
    name: str
    status: SubscriptionStatus


def subscriber_rows(
    session: Session,
    list_id: int,
    *,
    status: SubscriptionStatus | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[SubscriberRow]:
    """A list's subscribers, oldest first."""
    stmt = (
        select(Subscriber.email, Subscriber.name, Subscription.status)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(Subscription.list_id == list_id)
        .order_by(Subscriber.id)
        .limit(limit)
        .offset(offset)
    )
    if status is not None:
        stmt = stmt.where(Subscription.status == status)
    return [SubscriberRow(email, name, st) for email, name, st in session.execute(stmt)]

"""Compose the next issue of a list: select the items since the previous issue and freeze them.

Selection (DESIGN, flow step 2): an item of the list's sources that is in no issue of the list
yet, and that was published or first seen after the previous issue. A list's first issue looks
back `lookback_days` by publication date. Items published long before the previous issue and
only now discovered (a source added with years of archive) are left out: a late item counts
only when it was published within one look-back before the previous issue.

An issue ends at its cut-off: its scheduled time for a scheduled issue (whose sources were
collected just after it), else now. A dated item published after the cut-off waits for the
next issue, which starts there; an undated one is in if it was seen by the time of composing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from digest.errors import DigestError
from digest.models import (
    Grouping,
    Issue,
    IssueItem,
    IssueStatus,
    Item,
    ListSource,
    MailingList,
    Source,
    utcnow,
)
from digest.render.language import month_heading, resolve_locale
from digest.subscribers.lists import get_list


@dataclass(frozen=True, slots=True)
class Candidate:
    item_id: int
    source_name: str
    published_at: datetime | None
    first_seen_at: datetime

    @property
    def when(self) -> datetime:
        return self.published_at or self.first_seen_at


def previous_issue(session: Session, list_id: int) -> Issue | None:
    return session.scalar(
        select(Issue)
        .where(Issue.list_id == list_id, Issue.status != IssueStatus.CANCELLED)
        .order_by(Issue.number.desc())
        .limit(1)
    )


def select_candidates(
    session: Session, lst: MailingList, prev: Issue | None, now: datetime, cutoff: datetime
) -> list[Candidate]:
    """The list's items for the issue after `prev` (None: the list's first issue), up to
    `cutoff`, as collected by `now`."""
    lookback = timedelta(days=lst.lookback_days)
    in_an_issue = select(IssueItem.item_id).where(IssueItem.list_id == lst.id)
    if prev is None:
        since = cutoff - lookback
        recent = or_(
            Item.published_at >= since,
            and_(Item.published_at.is_(None), Item.first_seen_at >= since),
        )
    else:
        since = prev.period_end
        recent = or_(
            Item.published_at > since,
            and_(
                Item.first_seen_at > since,
                or_(Item.published_at.is_(None), Item.published_at >= since - lookback),
            ),
        )
    until = or_(Item.published_at.is_(None), Item.published_at <= cutoff)
    rows = session.execute(
        select(Item.id, Source.name, Item.published_at, Item.first_seen_at)
        .join(Source, Source.id == Item.source_id)
        .join(ListSource, and_(ListSource.source_id == Source.id, ListSource.list_id == lst.id))
        .where(recent, until, Item.id.not_in(in_an_issue), Item.first_seen_at <= now)
        # Same date: the order the source listed them in (collection keeps document order).
        .order_by(func.coalesce(Item.published_at, Item.first_seen_at).desc(), Item.id)
    )
    return [Candidate(*row) for row in rows]


def month_label(when: datetime, lst: MailingList, language: str | None = None) -> str:
    """The month of `when` in the list's zone, said in `language` (default: the list's)."""
    local = when.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(lst.timezone))
    # The locale render uses: "en-GB" works, an unknown language falls back to English.
    locale, _ = resolve_locale(language or lst.language)
    return month_heading(local.date(), locale)


def group_label(candidate: Candidate, lst: MailingList) -> str:
    if lst.grouping == Grouping.MONTH:
        return month_label(candidate.when, lst)
    if lst.grouping == Grouping.SOURCE:
        return candidate.source_name
    return ""


def order_for_grouping(candidates: list[Candidate], lst: MailingList) -> list[Candidate]:
    """Newest first; by source, sources keep the order of their newest item."""
    if lst.grouping != Grouping.SOURCE:
        return candidates
    first_seen: dict[str, int] = {}
    for i, c in enumerate(candidates):
        first_seen.setdefault(c.source_name, i)
    return sorted(candidates, key=lambda c: first_seen[c.source_name])


def fill_template(
    template: str,
    lst: MailingList,
    count: int,
    number: int,
    now: datetime,
    *,
    language: str | None = None,
) -> str:
    values = {
        "list": lst.name,
        "month": month_label(now, lst, language),
        "count": str(count),
        "number": str(number),
    }
    try:
        return template.format_map(values)
    except (KeyError, ValueError, IndexError) as exc:
        raise DigestError(
            f"list {lst.slug!r}: template {template!r} may use only "
            "{list}, {month}, {count} and {number}"
        ) from exc


def follow_items(issue: Issue, lst: MailingList, before: int) -> None:
    """After an editor's change to a draft's items (`before` of them until then): the subject
    and preheader the list's templates made for that count are made again for the count now
    ("4 new items" becomes "5 new items"), in the list's language. One the editor typed, or
    one no longer what the template makes (the list's template changed since), stays as it is.
    """
    after = len(issue.issue_items)
    if after == before:
        return
    for field, template in (
        ("subject", lst.subject_template),
        ("preheader", lst.preheader_template),
    ):
        try:
            made = fill_template(template, lst, before, issue.number, issue.period_end)
            if getattr(issue, field) == made:
                setattr(
                    issue,
                    field,
                    fill_template(template, lst, after, issue.number, issue.period_end),
                )
        except DigestError:  # a template compose would refuse: nothing of it to follow
            continue


def compose_issue(
    session: Session,
    list_ref: str | int,
    now: datetime | None = None,
    *,
    cutoff: datetime | None = None,
) -> Issue | None:
    """Create the next draft issue, or return None when there is nothing new.

    `cutoff` ends the issue's period (default: now): a scheduled issue's fire time."""
    now = now or utcnow()
    cutoff = min(cutoff or now, now)
    lst = get_list(session, list_ref)
    open_draft = session.scalar(
        select(Issue.number).where(Issue.list_id == lst.id, Issue.status == IssueStatus.DRAFT)
    )
    if open_draft is not None:
        raise DigestError(
            f"list {lst.slug!r} has a draft issue #{open_draft}: approve or discard it first"
        )
    prev = previous_issue(session, lst.id)
    if prev is not None and prev.period_end >= cutoff:
        return None  # an issue made since (by hand) already covers this period
    found = select_candidates(session, lst, prev, now, cutoff)
    if not found:
        return None
    # The newest max_items go in; the editor is told what was left out rather than losing it
    # silently (a later issue starts after this one, so they would not come back).
    candidates = order_for_grouping(found[: lst.max_items], lst)
    notes = []
    if len(found) > lst.max_items:
        notes.append(
            f"{len(found) - lst.max_items} older items were left out: the list takes at most "
            f"{lst.max_items} per issue"
        )
    number = (
        session.scalar(select(func.max(Issue.number)).where(Issue.list_id == lst.id)) or 0
    ) + 1
    issue = Issue(
        list_id=lst.id,
        number=number,
        status=IssueStatus.DRAFT,
        subject=fill_template(lst.subject_template, lst, len(candidates), number, cutoff),
        preheader=fill_template(lst.preheader_template, lst, len(candidates), number, cutoff),
        period_start=prev.period_end if prev else cutoff - timedelta(days=lst.lookback_days),
        period_end=cutoff,
        compose_notes=notes,
    )
    session.add(issue)
    session.flush()
    session.add_all(
        IssueItem(
            issue_id=issue.id,
            list_id=lst.id,
            item_id=c.item_id,
            position=i,
            group_label=group_label(c, lst),
        )
        for i, c in enumerate(candidates)
    )
    session.flush()
    return issue

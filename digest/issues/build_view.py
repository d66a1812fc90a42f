"""The plain IssueView (`digest.render.view`) of a stored issue: render never sees the ORM."""

from __future__ import annotations

from dataclasses import replace
from itertools import groupby

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from digest.config import Settings
from digest.errors import NotFound
from digest.models import Issue, IssueItem, Item
from digest.render.view import GroupView, IssueView, ItemView


def build_issue_view(session: Session, issue_id: int, settings: Settings) -> IssueView:
    issue = session.scalar(
        select(Issue)
        .where(Issue.id == issue_id)
        .options(
            selectinload(Issue.issue_items).selectinload(IssueItem.item).selectinload(Item.source),
            selectinload(Issue.mailing_list),
        )
    )
    if issue is None:
        raise NotFound(f"no issue {issue_id}")
    lst = issue.mailing_list
    ordered = sorted(issue.issue_items, key=lambda ii: ii.position)
    groups = tuple(
        GroupView(label=label, items=tuple(issue_item_view(ii) for ii in members))
        for label, members in groupby(ordered, key=lambda ii: ii.group_label)
    )
    return IssueView(
        list_name=lst.name,
        list_description=lst.description,
        number=issue.number,
        subject=issue.subject,
        preheader=issue.preheader,
        intro=issue.intro,
        language=lst.language,
        groups=groups,
        from_name=lst.from_name or settings.from_name,
        footer_address=lst.postal_address,
    )


def issue_item_view(ii: IssueItem) -> ItemView:
    """The item as this issue shows it: with the editor's title and summary when edited."""
    view = item_view(ii.item)
    if ii.title is not None:
        view = replace(view, title=ii.title)
    if ii.summary_html is not None:
        view = replace(view, summary_html=ii.summary_html, summary_text=ii.summary_text or "")
    return view


def item_view(item: Item) -> ItemView:
    return ItemView(
        title=item.title,
        url=item.url,
        summary_html=item.summary_html,
        summary_text=item.summary_text,
        published_at=item.published_at,
        image_url=item.image_url,
        source_name=item.source.name,
        source_url=item.source.url,
    )

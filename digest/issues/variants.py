"""An issue's variants: one rendering per (edition, topic set) present among its readers.

A list with editions and topics does not send one copy to everyone: each reader gets the
items of their edition (the sources of their language) and of their topics (none chosen:
all of them), in the issue's order and groups, in their language. Each distinct pair that
readers have is rendered once at approval and frozen (HTML, text, slot marker, message
template); per-recipient work stays a substitution into the variant's frozen message.
Every edition also gets its full variant (all topics), the copy of a reader whose choice
appears after approval. A variant with no item is frozen empty: its readers are planned
as skipped, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from digest import installation
from digest.config import Settings
from digest.delivery.audience import edition_of, list_editions, reader_groups
from digest.delivery.prepare import issue_template
from digest.issues.build_view import issue_item_view
from digest.issues.compose import fill_template, month_label
from digest.issues.lifecycle import get_issue
from digest.models import Grouping, Issue, IssueItem, IssueVariant, Item, MailingList, Topic
from digest.placeholders import Slots
from digest.render.issue import render_issue
from digest.render.view import GroupView, IssueView
from digest.subscribers.topics import parse_topic_ids


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """What the editor sees of a variant: whose it is, how many read it, what it holds."""

    id: int
    language: str
    topics: tuple[str, ...]  # topic names; () = every topic
    readers: int
    items: int
    subject: str


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def item_in_topic(item: Item, topic: Topic) -> bool:
    """An item is in a topic when its source is one of the topic's, or it carries one of the
    topic's feed categories, or its title or summary says one of its keywords (whole words,
    any case)."""
    if item.source_id in (topic.source_ids or ()):
        return True
    wanted = {c.casefold().strip() for c in topic.categories or ()}
    if wanted and wanted & {c.casefold().strip() for c in item.categories or ()}:
        return True
    if topic.keywords:
        text = f" {_words(item.title)} {_words(item.summary_text)} "
        return any(f" {_words(k)} " in text for k in topic.keywords if _words(k))
    return False


def _load(session: Session, issue_id: int) -> Issue:
    issue = session.scalar(
        select(Issue)
        .where(Issue.id == issue_id)
        .options(
            selectinload(Issue.issue_items).selectinload(IssueItem.item).selectinload(Item.source),
            selectinload(Issue.mailing_list),
        )
    )
    return issue if issue is not None else get_issue(session, issue_id)


def _group_label(ii: IssueItem, lst: MailingList, language: str) -> str:
    """The item's heading in the variant's language: a month is said again in it."""
    if lst.grouping != Grouping.MONTH or language == list_editions(lst)[0]:
        return ii.group_label
    return month_label(ii.item.published_at or ii.item.first_seen_at, lst, language)


def _in_variant(
    text: str, template: str, issue: Issue, lst: MailingList, language: str, count: int
) -> str:
    """The issue's subject or preheader; when it is still the one the list's template made
    (compose makes it, and an item added or dropped makes it again), made again in the
    variant's language with the variant's count (an editor's own words stay)."""
    total = len(issue.issue_items)
    made = fill_template(template, lst, total, issue.number, issue.period_end)
    if text != made:
        return text
    return fill_template(template, lst, count, issue.number, issue.period_end, language=language)


def _subject(issue: Issue, lst: MailingList, language: str, count: int) -> str:
    return _in_variant(issue.subject, lst.subject_template, issue, lst, language, count)


def _preheader(issue: Issue, lst: MailingList, language: str, count: int) -> str:
    return _in_variant(issue.preheader, lst.preheader_template, issue, lst, language, count)


def variant_view(
    issue: Issue, lst: MailingList, members: Sequence[IssueItem], language: str, settings: Settings
) -> IssueView:
    labelled = [(_group_label(ii, lst, language), ii) for ii in members]
    groups = tuple(
        GroupView(label=label, items=tuple(issue_item_view(ii) for _, ii in group))
        for label, group in groupby(labelled, key=lambda pair: pair[0])
    )
    return IssueView(
        list_name=lst.name,
        list_description=lst.description,
        number=issue.number,
        subject=_subject(issue, lst, language, len(members)),
        preheader=_preheader(issue, lst, language, len(members)),
        intro=issue.intro,
        language=language,
        groups=groups,
        from_name=lst.from_name or settings.from_name,
        footer_address=lst.postal_address,
    )


def _members(
    issue: Issue, lst: MailingList, language: str, topics: Sequence[Topic]
) -> list[IssueItem]:
    ordered = sorted(issue.issue_items, key=lambda ii: ii.position)
    return [
        ii
        for ii in ordered
        if edition_of(ii.item.source.language, lst) == language
        and (not topics or any(item_in_topic(ii.item, t) for t in topics))
    ]


def freeze_variants(session: Session, issue_id: int, settings: Settings) -> list[IssueVariant]:
    """Render and freeze each (edition, topic set) the list's readers have now, and each
    edition's full variant; those frozen already are kept (their reader count refreshed).
    Returns the issue's variants."""
    issue = _load(session, issue_id)
    lst = issue.mailing_list
    topics = {t.id: t for t in session.scalars(select(Topic).where(Topic.list_id == lst.id))}
    existing = {
        (v.language, v.topic_ids): v
        for v in session.scalars(select(IssueVariant).where(IssueVariant.issue_id == issue_id))
    }
    part = installation.message_id_part(session)
    counts: dict[tuple[str, str], int] = {}
    for language, topic_ids, readers in reader_groups(session, lst):
        key = (language, _known(topic_ids, topics))
        counts[key] = counts.get(key, 0) + readers
    for language in {language for language, _ in counts}:
        counts.setdefault((language, ""), 0)
    made: list[IssueVariant] = []
    for (language, topic_ids), readers in sorted(counts.items()):
        variant = existing.get((language, topic_ids))
        if variant is None:
            chosen = [topics[i] for i in parse_topic_ids(topic_ids) if i in topics]
            variant = _freeze_one(issue, lst, language, topic_ids, chosen, settings)
            existing[(language, topic_ids)] = variant
            made.append(variant)
        variant.readers = readers
    # Their ids (one INSERT for all): each copy's view-online link opens its own variant.
    session.add_all(made)
    session.flush()
    for variant in made:
        if variant.message_template is None and variant.html and variant.text:
            template = issue_template(
                issue,
                variant.html,
                variant.text,
                Slots(variant.slot_marker or ""),
                settings,
                subject=variant.subject,
                message_id_part=part,
                variant_id=variant.id,
            )
            variant.message_template = template.to_bytes()
    session.flush()
    return sorted(existing.values(), key=lambda v: (v.language, v.topic_ids))


def _known(topic_ids: str, topics: dict[int, Topic]) -> str:
    """The reader's topic set with topics deleted since left out ("" when none is left)."""
    return ",".join(str(i) for i in parse_topic_ids(topic_ids) if i in topics)


def _freeze_one(
    issue: Issue,
    lst: MailingList,
    language: str,
    topic_ids: str,
    topics: Sequence[Topic],
    settings: Settings,
) -> IssueVariant:
    """The variant rendered (its message template is made once it has an id)."""
    members = _members(issue, lst, language, topics)
    ids = [ii.item_id for ii in members]
    variant = IssueVariant(issue_id=issue.id, language=language, topic_ids=topic_ids, item_ids=ids)
    if not members:
        variant.subject = issue.subject
        variant.render_warnings = []
        return variant
    whole = len(members) == len(issue.issue_items) and language == list_editions(lst)[0]
    if whole and issue.html and issue.text and issue.slot_marker and issue.message_template:
        # The issue itself, frozen already: no second rendering.
        variant.subject = issue.subject
        variant.html, variant.text = issue.html, issue.text
        variant.slot_marker = issue.slot_marker
        variant.render_warnings = list(issue.render_warnings or ())
        variant.message_template = issue.message_template
        return variant
    view = variant_view(issue, lst, members, language, settings)
    # render_issue has checked the HTML against the allow-list (UnsafeHtmlError otherwise).
    rendered = render_issue(view, size_warning_bytes=settings.html_size_warning_bytes)
    variant.subject = view.subject
    variant.html, variant.text = rendered.html, rendered.text
    variant.slot_marker = rendered.slots.marker
    variant.render_warnings = list(rendered.warnings)
    return variant


def variant_summaries(session: Session, issue_id: int) -> list[VariantSummary]:
    """The issue's variants as the editor sees them, most readers first."""
    issue = get_issue(session, issue_id)
    rows = session.execute(select(Topic.id, Topic.name).where(Topic.list_id == issue.list_id))
    names = {int(i): str(name) for i, name in rows}
    variants = session.scalars(select(IssueVariant).where(IssueVariant.issue_id == issue_id))
    return sorted(
        (
            VariantSummary(
                id=v.id,
                language=v.language,
                topics=tuple(names.get(i, f"#{i}") for i in parse_topic_ids(v.topic_ids)),
                readers=v.readers,
                items=v.item_count,
                subject=v.subject,
            )
            for v in variants
        ),
        key=lambda s: (-s.readers, s.language, s.topics),
    )


def variant_at(session: Session, issue_id: int, variant_id: int) -> IssueVariant | None:
    variant = session.get(IssueVariant, variant_id)
    return variant if variant is not None and variant.issue_id == issue_id else None


__all__ = [
    "VariantSummary",
    "freeze_variants",
    "item_in_topic",
    "variant_at",
    "variant_summaries",
    "variant_view",
]

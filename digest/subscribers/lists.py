"""Lists: create, edit, find, link sources."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.db import MAX_INT
from digest.errors import NotFound
from digest.models import Grouping, ListSource, MailingList, OptIn, Source, Topic
from digest.subscribers.list_settings import (
    InvalidSettings,
    ListSettings,
    apply_settings,
    check_settings,
    clean_postal_address,
)

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


def find_list(session: Session, slug: str) -> MailingList | None:
    """A list by its slug only (the public sign-up page names lists so), or None."""
    return session.scalar(select(MailingList).where(MailingList.slug == slug))


def get_list(session: Session, slug_or_id: str | int) -> MailingList:
    """A list by slug, else by id: a slug may be all digits ("2024"), and then it wins."""
    found = None
    if isinstance(slug_or_id, str):
        found = find_list(session, slug_or_id)
    text = str(slug_or_id)
    # An id is ASCII digits in the store's range ("²" is a digit to str.isdigit, not to int).
    if found is None and text.isascii() and text.isdigit() and 0 < int(text) <= MAX_INT:
        found = session.get(MailingList, int(text))
    if found is None:
        raise NotFound(f"no list {slug_or_id!r}")
    return found


def create_list(
    session: Session,
    *,
    slug: str,
    name: str,
    description: str = "",
    from_name: str | None = None,
    from_email: str | None = None,
    language: str = "en",
    timezone: str = "UTC",
    schedule_cron: str = "0 9 1 * *",
    grouping: str = Grouping.MONTH,
    lookback_days: int = 31,
    subject_template: str = "{list}: {month}",
    preheader_template: str = "{count} new items",
    auto_approve: bool = False,
    max_items: int = 50,
    private: bool = False,
    postal_address: str = "",
    reply_to: str | None = None,
    opt_in: str = OptIn.DOUBLE,
    send_local_time: str = "",
    editions: Sequence[str] = (),
) -> MailingList:
    """A new list; InvalidSettings (a DigestError) naming each refused field."""
    values = ListSettings(
        name=name,
        description=description,
        from_name=from_name or "",
        from_email=from_email or "",
        reply_to=reply_to or "",
        postal_address=postal_address,
        language=language,
        timezone=timezone,
        schedule=schedule_cron,
        send_local_time=send_local_time,
        opt_in=str(opt_in),
        grouping=str(grouping),
        subject_template=subject_template,
        preheader_template=preheader_template,
        lookback_days=lookback_days,
        max_items=max_items,
        auto_approve=auto_approve,
        private=private,
        editions=list(editions),
    )
    return create_list_with(session, slug, values)


RESERVED = frozenset({"new"})  # /editor/lists/new is the form


def check_slug(slug: str) -> str:
    if slug in RESERVED:
        raise InvalidSettings({"slug": f"{slug!r} is reserved: choose another slug"})
    if not SLUG.match(slug):
        shown = slug[:40] + ("..." if len(slug) > 40 else "")
        raise InvalidSettings(
            {"slug": f"{shown!r}: use 1 to 100 lower-case letters, digits and dashes"}
        )
    return slug


def create_list_with(session: Session, slug: str, values: ListSettings) -> MailingList:
    """A new list with these settings (every one checked, each refusal named by its field)."""
    errors: dict[str, str] = {}
    try:
        check_slug(slug)
    except InvalidSettings as exc:
        errors.update(exc.errors)
    try:
        clean = check_settings(values)
    except InvalidSettings as exc:
        errors.update(exc.errors)
    if errors:
        raise InvalidSettings(errors)
    if session.scalar(select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise InvalidSettings({"slug": f"a list {slug!r} already exists"})
    lst = MailingList(slug=slug)
    apply_settings(lst, clean)
    session.add(lst)
    session.flush()
    return lst


def update_list(
    session: Session, slug_or_id: str | int, changes: Mapping[str, Any]
) -> tuple[MailingList, list[str]]:
    """Change some settings of a list (a form sends all, the API some); all are checked
    together, and nothing is changed when one is refused. The list and what changed."""
    lst = get_list(session, slug_or_id)
    clean = check_settings(ListSettings.of(lst).merged(changes))
    changed = apply_settings(lst, clean)
    session.flush()
    return lst, changed


def set_postal_address(session: Session, slug_or_id: str | int, address: str) -> MailingList:
    """The list's postal address, shown in every issue's footer (empty: none, and approval
    warns)."""
    lst = get_list(session, slug_or_id)
    lst.postal_address = clean_postal_address(address)
    session.flush()
    return lst


def set_private(session: Session, slug_or_id: str | int, private: bool) -> MailingList:
    """A private list has no public archive; a public one shows its sent issues to anyone."""
    lst = get_list(session, slug_or_id)
    lst.private = private
    session.flush()
    return lst


def link_source(session: Session, list_id: int, source_id: int) -> None:
    if session.get(ListSource, (list_id, source_id)) is None:
        if session.get(Source, source_id) is None:
            raise NotFound(f"no source {source_id}")
        session.add(ListSource(list_id=list_id, source_id=source_id))
        session.flush()


def unlink_source(session: Session, list_id: int, source_id: int) -> bool:
    """The source no longer feeds the list (its items stay); the list's topics forget it.
    False when it was not linked."""
    link = session.get(ListSource, (list_id, source_id))
    if link is None:
        return False
    session.delete(link)
    for topic in session.scalars(select(Topic).where(Topic.list_id == list_id)):
        if source_id in (topic.source_ids or []):
            topic.source_ids = [i for i in topic.source_ids if i != source_id]
    session.flush()
    return True

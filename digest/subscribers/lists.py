"""Lists: create, find, link sources."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.db import MAX_INT
from digest.errors import DigestError, NotFound
from digest.models import Grouping, ListSource, MailingList, Source

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


def validate_list_settings(
    *,
    slug: str,
    timezone: str,
    schedule_cron: str,
    grouping: str,
    lookback_days: int,
    max_items: int = 50,
) -> None:
    if not SLUG.match(slug):
        raise DigestError(f"list slug {slug!r}: use lower-case letters, digits and dashes")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DigestError(f"unknown time zone {timezone!r}") from exc
    if not croniter.is_valid(schedule_cron):
        raise DigestError(f"invalid cron schedule {schedule_cron!r}")
    if grouping not in {g.value for g in Grouping}:
        raise DigestError(f"grouping must be one of {', '.join(g.value for g in Grouping)}")
    if lookback_days < 1:
        raise DigestError("lookback days must be at least 1")
    if not 1 <= max_items <= 500:
        raise DigestError("max items must be between 1 and 500")


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
) -> MailingList:
    validate_list_settings(
        slug=slug,
        timezone=timezone,
        schedule_cron=schedule_cron,
        grouping=grouping,
        lookback_days=lookback_days,
        max_items=max_items,
    )
    if session.scalar(select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise DigestError(f"a list {slug!r} already exists")
    lst = MailingList(
        slug=slug,
        name=name,
        description=description,
        from_name=from_name,
        from_email=from_email,
        language=language,
        timezone=timezone,
        schedule_cron=schedule_cron,
        grouping=Grouping(grouping),
        lookback_days=lookback_days,
        subject_template=subject_template,
        preheader_template=preheader_template,
        auto_approve=auto_approve,
        max_items=max_items,
        private=private,
        postal_address=clean_postal_address(postal_address),
    )
    session.add(lst)
    session.flush()
    return lst


POSTAL_ADDRESS_MAX = 500
_POSTAL_FORBIDDEN = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean_postal_address(value: str) -> str:
    """A postal address as the footer shows it: lines of text (CRLF or CR made LF), no other
    control or bidi characters, at most POSTAL_ADDRESS_MAX characters."""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.strip() for line in text.split("\n")).strip()
    if _POSTAL_FORBIDDEN.search(text):
        raise DigestError("the postal address has control or bidi characters")
    if len(text) > POSTAL_ADDRESS_MAX:
        raise DigestError(f"the postal address is longer than {POSTAL_ADDRESS_MAX} characters")
    return text


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

"""The store: typed SQLAlchemy 2 models for every word of the domain.

source, item, list (MailingList), subscriber, subscription, issue, issue item, delivery,
suppression, event. Times are stored as naive UTC (SQLite has no time zones).

Every status (and every other column that holds one of a few words) is one StrEnum beside
its model, stored as its values, with a CHECK constraint: code compares and assigns members,
and a misspelt word fails at once instead of being stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
    true,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import Mapped, mapped_column, relationship

from digest.db import Base

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Naive UTC now, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


def words(enum: type[StrEnum], name: str, length: int = 16) -> SqlEnum:
    """A column of `enum`'s values: VARCHAR(length) with a CHECK constraint named
    ck_<table>_<name> (no native ENUM type: adding a word needs no ALTER TYPE)."""
    return SqlEnum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class SourceKind(StrEnum):
    FEED = "feed"  # RSS, Atom or JSON Feed
    HTML = "html"  # a news-listing page read with CSS selectors
    AUTO = "auto"  # whatever it turns out to be each time: a feed, a page, a page's feed
    MANUAL = "manual"  # items an editor adds by hand; never fetched


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[SourceKind] = mapped_column(words(SourceKind, "kind"), default=SourceKind.FEED)
    # CSS selectors for html sources: item, title, link, date, summary, next, max_pages.
    selectors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    language: Mapped[str | None] = mapped_column(String(16))
    fetch_interval_minutes: Mapped[int] = mapped_column(Integer, default=60)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_fetched_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_fetch_at: Mapped[datetime | None] = mapped_column(DateTime)
    # A disabled source is never due: kept with its items and history, fetched only again
    # once an admin enables it.
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    items: Mapped[list[Item]] = relationship(back_populates="source")


class FetchOutcome(StrEnum):
    NEW_ITEMS = "new_items"
    NO_NEW_ITEMS = "no_new_items"
    NOT_MODIFIED = "not_modified"
    ERROR = "error"


class SourceFetch(Base):
    """One fetch of a source by a collect run: what it found or why it failed. The newest
    few per source are kept (digest.sources.history), for the admin's history of a source."""

    __tablename__ = "source_fetches"
    __table_args__ = (Index("ix_source_fetches_source", "source_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    outcome: Mapped[FetchOutcome] = mapped_column(words(FetchOutcome, "outcome"))
    seen: Mapped[int] = mapped_column(Integer, default=0)  # items the documents held
    new: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("source_id", "guid"),
        UniqueConstraint("canonical_url"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    canonical_url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    summary_html: Mapped[str] = mapped_column(Text, default="")
    summary_text: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    image_url: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # The feed's own categories (tags) of the item, plain text: topics may be defined by them.
    categories: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")

    source: Mapped[Source] = relationship(back_populates="items")


class Grouping(StrEnum):
    """How an issue's items are grouped under headings."""

    MONTH = "month"
    SOURCE = "source"
    NONE = "none"


class OptIn(StrEnum):
    """How a public sign-up becomes a subscription: confirmed by a mailed link (double), or
    at once (single)."""

    DOUBLE = "double"
    SINGLE = "single"


class MailingList(Base):
    """A list: who gets which sources' news, how often, and how the issue looks."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    from_name: Mapped[str | None] = mapped_column(String(200))
    from_email: Mapped[str | None] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    # Jinja-free templates with {list}, {month}, {count} and {number}.
    subject_template: Mapped[str] = mapped_column(Text, default="{list}: {month}")
    preheader_template: Mapped[str] = mapped_column(Text, default="{count} new items")
    language: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    schedule_cron: Mapped[str] = mapped_column(String(100), default="0 9 1 * *")
    grouping: Mapped[Grouping] = mapped_column(words(Grouping, "grouping"), default=Grouping.MONTH)
    lookback_days: Mapped[int] = mapped_column(Integer, default=31)
    max_items: Mapped[int] = mapped_column(Integer, default=50)
    # Scheduled issues are sent without an editor's approval when set.
    auto_approve: Mapped[bool] = mapped_column(Boolean, default=False)
    postal_address: Mapped[str] = mapped_column(Text, default="")
    # A private list has no public archive (its sent issues and their Atom feed answer 404).
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    opt_in: Mapped[OptIn] = mapped_column(
        words(OptIn, "opt_in"), default=OptIn.DOUBLE, server_default=OptIn.DOUBLE.value
    )
    # Language editions besides `language` (e.g. ["fr", "es"]): each reader gets the edition
    # of their language, made from the sources of that language (digest.readers).
    editions: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # "HH:MM": deliveries become due at that time in each reader's time zone; None: at once.
    send_local_time: Mapped[str | None] = mapped_column(String(5))
    # The last time the scheduler looked at this list; a cron fire after it is due.
    schedule_checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    sources: Mapped[list[Source]] = relationship(secondary="list_sources")


class ScheduledState(StrEnum):
    """pending -> collecting (an attempt holds its lease) -> composed | empty | failed (tried
    again) | superseded (a later fire of its list took over)."""

    PENDING = "pending"
    COLLECTING = "collecting"
    COMPOSED = "composed"  # its issue exists
    EMPTY = "empty"  # nothing new: no issue, none missing
    FAILED = "failed"
    SUPERSEDED = "superseded"


class ScheduledIssue(Base):
    """One fire of a list's schedule, recorded in the transaction that moves the list's
    checkpoint past it and kept until its issue exists (or compose found nothing new), so a
    lost or failed compose is retried and shown, never skipped silently."""

    __tablename__ = "scheduled_issues"
    __table_args__ = (
        UniqueConstraint("list_id", "fire_at"),
        Index("ix_scheduled_issues_open", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    fire_at: Mapped[datetime] = mapped_column(DateTime)  # the cut-off of its issue
    state: Mapped[ScheduledState] = mapped_column(
        words(ScheduledState, "state"), default=ScheduledState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)  # a failed one's retry
    # The claim of the attempt in progress: only its holder may settle the record.
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime)

    mailing_list: Mapped[MailingList] = relationship()


class Topic(Base):
    """A topic of a list: the items of some of its sources, or carrying some feed categories,
    or mentioning some keywords (any one of them puts an item in the topic)."""

    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("list_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    source_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)


class ListSource(Base):
    __tablename__ = "list_sources"

    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )


class Subscriber(Base):
    __tablename__ = "subscribers"
    # The admin's search finds any part of an address or a name: trigram indexes on
    # PostgreSQL (pg_trgm, made with the table), plain ones elsewhere.
    __table_args__ = (
        Index(
            "ix_subscribers_email_trgm",
            "email",
            postgresql_using="gin",
            postgresql_ops={"email": "gin_trgm_ops"},
        ),
        Index(
            "ix_subscribers_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # normalised, lower-case
    name: Mapped[str] = mapped_column(String(200), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The reader's language ("fr") and IANA time zone ("America/Lima"); None: the list's.
    language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SubscriptionStatus(StrEnum):
    PENDING = "pending"  # signed up, not confirmed yet: gets no issue
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


# Statuses in which the subscriber may still get mail; the others have stopped it.
RECEIVING = (SubscriptionStatus.PENDING, SubscriptionStatus.CONFIRMED)
STOPPED = (
    SubscriptionStatus.UNSUBSCRIBED,
    SubscriptionStatus.BOUNCED,
    SubscriptionStatus.COMPLAINED,
)


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("list_id", "subscriber_id"),
        # Also the admin's search by list and status, a page at a time (subscriber_id).
        Index("ix_subscriptions_list_status", "list_id", "status", "subscriber_id"),
        # The report's "joined after the issue went out": a range of each, OR-ed by bitmap
        # (they are the newest ids, so the primary key would read every older row first).
        Index("ix_subscriptions_list_confirmed", "list_id", "confirmed_at"),
        Index("ix_subscriptions_list_created", "list_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[SubscriptionStatus] = mapped_column(
        words(SubscriptionStatus, "status"), default=SubscriptionStatus.PENDING
    )
    preferences: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The reader's topics of the list: their ids, ascending, comma-separated ("" = everything).
    # One string so planning can match it to a variant in SQL. Raw loads (COPY) get "" too.
    topic_ids: Mapped[str] = mapped_column(String(200), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime)

    subscriber: Mapped[Subscriber] = relationship()
    mailing_list: Mapped[MailingList] = relationship()


class IssueStatus(StrEnum):
    """draft -> approved -> sending -> sent; approved -> draft; sending <-> paused; any unsent
    one -> cancelled."""

    DRAFT = "draft"
    APPROVED = "approved"  # rendered once and frozen
    SENDING = "sending"  # planned; senders claim its deliveries
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("list_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[IssueStatus] = mapped_column(
        words(IssueStatus, "status"), default=IssueStatus.DRAFT
    )
    subject: Mapped[str] = mapped_column(Text)
    preheader: Mapped[str] = mapped_column(Text, default="")
    intro: Mapped[str] = mapped_column(Text, default="")
    period_start: Mapped[datetime | None] = mapped_column(DateTime)
    period_end: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    # An approved issue's scheduled send (naive UTC; chosen in the list's time zone): the due
    # check (`digest run`, beat) hands it to the senders once this has passed.
    send_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    # Frozen once at render time, never rebuilt per recipient.
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    # The secret marker html and text spell their per-recipient slots with (digest.placeholders).
    slot_marker: Mapped[str | None] = mapped_column(String(48))
    render_warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    # What compose wants the editor to know (e.g. items left out by the list's max_items).
    compose_notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    message_template: Mapped[bytes | None] = mapped_column(LargeBinary)
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0)

    mailing_list: Mapped[MailingList] = relationship()
    issue_items: Mapped[list[IssueItem]] = relationship(
        back_populates="issue", order_by="IssueItem.position", cascade="all, delete-orphan"
    )


class IssueVariant(Base):
    """One rendering of an issue for the readers of one edition with one topic set, frozen
    at approval: its HTML, text, slot marker and message template. Each delivery names the
    variant its copy comes from; per-recipient work stays a substitution into it."""

    __tablename__ = "issue_variants"
    __table_args__ = (UniqueConstraint("issue_id", "language", "topic_ids"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(16))  # the edition
    topic_ids: Mapped[str] = mapped_column(String(200), default="")  # as Subscription's
    subject: Mapped[str] = mapped_column(Text)
    item_ids: Mapped[list[int]] = mapped_column(JSON, default=list)  # in the issue's order
    readers: Mapped[int] = mapped_column(Integer, default=0)  # confirmed readers at freezing
    html: Mapped[str | None] = mapped_column(Text)  # None: no items, nothing to send
    text: Mapped[str | None] = mapped_column(Text)
    slot_marker: Mapped[str | None] = mapped_column(String(48))
    render_warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    message_template: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def item_count(self) -> int:
        return len(self.item_ids)


class IssueItem(Base):
    """An item frozen into an issue; (list_id, item_id) unique: one issue per item per list."""

    __tablename__ = "issue_items"
    __table_args__ = (UniqueConstraint("list_id", "item_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    group_label: Mapped[str] = mapped_column(String(200), default="")
    # An editor's own title and summary for this issue (None: the item's, as collected). Kept
    # here, not on the item: a re-collect updates the item, and other lists keep theirs.
    title: Mapped[str | None] = mapped_column(Text)
    summary_html: Mapped[str | None] = mapped_column(Text)
    summary_text: Mapped[str | None] = mapped_column(Text)

    issue: Mapped[Issue] = relationship(back_populates="issue_items")
    item: Mapped[Item] = relationship()


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # planned, or waiting for its retry
    SENDING = "sending"  # claimed under a lease
    SENT = "sent"
    FAILED = "failed"
    # Not sent because, by the time its turn came, the subscription was no longer confirmed
    # or the address was suppressed.
    SKIPPED = "skipped"


# Settled: nothing more happens to the row.
SETTLED = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)


class Delivery(Base):
    """One row per recipient of an issue: the snapshot taken at planning and its ledger."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id"),
        Index("ix_deliveries_claim", "issue_id", "status", "next_attempt_at"),
        # A subscriber's page lists their deliveries; erasure deletes them.
        Index("ix_deliveries_subscriber", "subscriber_id"),
        # When an issue's first copy went out (the report's "after it"): one index entry, not
        # a scan of its million rows. Partial: planning writes no sent_at, so adds no entry.
        Index(
            "ix_deliveries_sent_at",
            "issue_id",
            "sent_at",
            postgresql_where=text("sent_at IS NOT NULL"),
            sqlite_where=text("sent_at IS NOT NULL"),
        ),
    )

    # No foreign keys here on purpose: this ledger takes a million rows per issue, and the
    # per-row FK checks tripled the planning time (23 s vs 7 s for 1M on PostgreSQL). The
    # services that delete issues or subscribers delete their deliveries themselves.
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(BigInteger)
    subscriber_id: Mapped[int] = mapped_column(BigInteger)
    subscription_id: Mapped[int] = mapped_column(BigInteger)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[DeliveryStatus] = mapped_column(
        words(DeliveryStatus, "status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    # When the row may next be claimed: never NULL, so the claim is one range of its index
    # (`<= now`, in index order, no sort); `OR IS NULL` made PostgreSQL sort every pending
    # row of a 1M-row issue on each claim (368 ms against 2-7 ms).
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The variant (IssueVariant) the copy comes from; None: the issue's own message.
    variant_id: Mapped[int | None] = mapped_column(BigInteger)
    # When the delivery became due at planning (the reader's local hour, or at once); its
    # first next_attempt_at. Kept as planned, so the waves still to come can be shown.
    due_at: Mapped[datetime | None] = mapped_column(DateTime)


class SuppressionReason(StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"


class Suppression(Base):
    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(words(SuppressionReason, "reason", 32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EventKind(StrEnum):
    SUBSCRIBED = "subscribed"  # added by an admin or an import
    SIGNUP = "signup"  # a sign-up request was handled (its outcome in the detail)
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    RESUBSCRIBED = "resubscribed"
    PREFERENCES_UPDATED = "preferences_updated"
    DELIVERY_FAILED = "delivery_failed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SOFT_BOUNCE = "soft_bounce"


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[EventKind] = mapped_column(words(EventKind, "kind", 32), index=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TotalRecord(StrEnum):
    DELIVERY = "delivery"  # outcome: a DeliveryStatus
    EVENT = "event"  # outcome: an EventKind


class IssueTotal(Base):
    """What retention removed, kept as counts: an old issue's delivery rows by status and its
    events by kind (`digest.retention`). No foreign key, as for the deliveries."""

    __tablename__ = "issue_totals"

    issue_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    record: Mapped[TotalRecord] = mapped_column(words(TotalRecord, "record"), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SignupOutcome(StrEnum):
    SENT = "sent"  # the confirmation went out
    FAILED = "failed"
    THROTTLED = "throttled"
    SUPPRESSED = "suppressed"
    SUBSCRIBED = "subscribed"  # already confirmed: no mail
    BOT = "bot"  # the honeypot was filled in


class SignupRequest(Base):
    """A sign-up form post. The request only records it; whether a confirmation is mailed
    (throttles, suppression, the subscription's state) is decided and done after the
    response, so every post gets the same answer in the same time."""

    __tablename__ = "signup_requests"
    __table_args__ = (Index("ix_signup_requests_open", "outcome", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))  # normalised
    name: Mapped[str] = mapped_column(String(200), default="")
    bot: Mapped[bool] = mapped_column(Boolean, default=False)  # the honeypot was filled in
    # What the form said of the reader: their language, and the time zone their browser
    # suggested; given to a new subscriber only (never to an existing one: anyone can post).
    language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    outcome: Mapped[SignupOutcome | None] = mapped_column(
        words(SignupOutcome, "outcome")
    )  # None: open
    detail: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="SET NULL"), index=True
    )
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    mailing_list: Mapped[MailingList] = relationship()


class ThrottleCounter(Base):
    """Fixed-window counters for throttles when no Redis is configured."""

    __tablename__ = "throttle_counters"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Role(StrEnum):
    """What a user may do; each role may also do everything of the roles before it."""

    VIEWER = "viewer"  # reads everything
    EDITOR = "editor"  # edits drafts, sends proofs
    PUBLISHER = "publisher"  # approves, schedules, sends, pauses, cancels
    ADMIN = "admin"  # lists, sources, subscribers, users

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class User(Base):
    """A person who signs in to the editor and the API (argon2 password hash, never the
    password)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # the sign-in name, lower-case
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[Role] = mapped_column(words(Role, "role"), default=Role.VIEWER)
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_signin_at: Mapped[datetime | None] = mapped_column(DateTime)


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; the row holds its SHA-256 only,
    and the session's own random CSRF token."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)

    user: Mapped[User] = relationship()


class ApiToken(Base):
    """A user's token for the JSON API: shown once, kept as its SHA-256; the user's role."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists, to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class AuditEntry(Base):
    """Who did what to which issue, list, source, subscriber or user, when, from where. The
    actor's name is copied: the entry outlives the user."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_target", "target_kind", "target_id", "id"),
        Index("ix_audit_log_actor", "actor", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(320))  # a user's email, or "cli:<login>"
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_kind: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(320), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    address: Mapped[str] = mapped_column(String(64), default="")  # the client's IP, or "cli"


event.listen(
    Subscriber.__table__,
    "before_create",
    DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(  # type: ignore[no-untyped-call]
        dialect="postgresql"
    ),
)


class Verdict(StrEnum):
    """What a returned message, or the relay's answer at send time, says about an address
    (digest.subscribers.classify decides; digest.subscribers.feedback acts)."""

    HARD = "hard"  # the address does not exist or has moved: suppressed at once
    SOFT = "soft"  # mailbox full, expired, temporary trouble: suppressed after N in a window
    BLOCK = "block"  # block, policy, authentication, spam: never the subscriber's fault
    OURS = "ours"  # a command the relay could not parse (501, 5.5.x), a copy we could not build
    DELAY = "delay"  # still trying: nothing to do
    COMPLAINT = "complaint"  # ARF abuse, Microsoft JMRP: unsubscribed and suppressed
    OPT_OUT = "opt_out"  # ARF opt-out: unsubscribed only
    AUTH_FAILURE = "auth_failure"  # a DMARC failure report: neither
    AUTO_REPLY = "auto_reply"  # out of office and the like
    UNSUBSCRIBE = "unsubscribe"  # a mailto: unsubscribe request
    OTHER = "other"  # mail that is none of these


class FeedbackAction(StrEnum):
    """What was done about a delivery event."""

    NONE = "none"  # recorded only (unmatched, a delay, a soft bounce below the limit ...)
    SUPPRESSED = "suppressed"  # the address suppressed (and its subscriptions stopped)
    UNSUBSCRIBED = "unsubscribed"  # the list's subscription stopped, the address kept
    DOMAIN_PAUSED = "domain_paused"  # the destination domain's deliveries paused


class FeedbackVia(StrEnum):
    RELAY = "relay"  # the relay's answer at send time
    INBOUND = "inbound"  # a message that came back (`digest inbound`)


class DeliveryEvent(Base):
    """Something a delivery's recipient system said: a relay's answer at send time, a bounce,
    a complaint, an unsubscribe by mail. Matched to our delivery by its VERP return path or a
    quoted Message-ID; an unmatched one is recorded and changes nothing."""

    __tablename__ = "delivery_events"
    __table_args__ = (
        Index("ix_delivery_events_email", "email", "verdict", "created_at"),
        Index("ix_delivery_events_domain", "domain", "verdict", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    verdict: Mapped[Verdict] = mapped_column(words(Verdict, "verdict"))
    action: Mapped[FeedbackAction] = mapped_column(
        words(FeedbackAction, "action"), default=FeedbackAction.NONE
    )
    via: Mapped[FeedbackVia] = mapped_column(words(FeedbackVia, "via"))
    matched: Mapped[bool] = mapped_column(Boolean, default=False)
    delivery_id: Mapped[int | None] = mapped_column(BigInteger)
    issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("issues.id", ondelete="SET NULL"), index=True
    )
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), default="")
    domain: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default="")  # 5.1.1, 550 ...
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PausedDomain(Base):
    """A destination domain that refused us (blocks at a rate): its deliveries wait until
    `paused_until`, or until an operator resumes it."""

    __tablename__ = "paused_domains"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    paused_until: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Installation(Base):
    """One row: what makes this installation's Message-IDs its own (a random part), so two
    databases never make the same one."""

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id_part: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def _as_member(enum: type[Enum]) -> Any:
    def coerce(_target: Any, value: Any, _old: Any, _initiator: Any) -> Any:
        return value if value is None or isinstance(value, enum) else enum(value)

    return coerce


# A word assigned as a plain string ("sent") becomes its enum member at once, so attributes
# hold what their annotations say, and a word no enum has fails where it is assigned.
for _mapper in Base.registry.mappers:
    for _column in _mapper.columns:
        if isinstance(_column.type, SqlEnum) and _column.type.enum_class is not None:
            _attribute = getattr(_mapper.class_, _column.key)
            event.listen(_attribute, "set", _as_member(_column.type.enum_class), retval=True)

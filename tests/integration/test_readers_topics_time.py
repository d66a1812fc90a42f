"""Each reader's digest: only their topics, at 09:00 where they live (issue 11).

Subscribers in three topic sets and five time zones, on a fake clock (time-machine): every
copy holds exactly its reader's items, in the issue's order, and goes out in the hour its
reader's clock reads 09:00; a reader whose topics have nothing gets no mail, recorded as
skipped; the issue stays "sending" until the last wave and `waves_to_come` shows the rest.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import time_machine
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from digest.config import get_settings
from digest.db import session_factory
from digest.delivery.ledger import NOTHING_FOR_THEM, finish_issue_if_done, waves_to_come
from digest.delivery.maildir import MaildirTransport
from digest.delivery.send import send_batch
from digest.issues.compose import compose_issue
from digest.issues.variants import variant_summaries
from digest.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Item,
    Source,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from digest.pipeline import approve_issue, start_sending
from digest.subscribers.actions import update_preferences
from digest.subscribers.lists import create_list, link_source
from digest.subscribers.topics import define_topic
from tests.flows import maildir_copies

START = datetime(2026, 3, 2, 10, 30)  # a Monday, before any DST change of the zones below
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Pacific/Auckland"]
# 09:00 local, at or after START, in UTC (CET +1, EST -5, JST +9, NZDT +13).
DUE = {
    "UTC": datetime(2026, 3, 3, 9, 0),
    "Europe/Paris": datetime(2026, 3, 3, 8, 0),
    "America/New_York": datetime(2026, 3, 2, 14, 0),
    "Asia/Tokyo": datetime(2026, 3, 3, 0, 0),
    "Pacific/Auckland": datetime(2026, 3, 2, 20, 0),
}
TITLES = {
    "heat": "Heat records broken in Lima",
    "fair": "Jobs fair for young workers",
    "payroll": "Payroll survey published",
    "bank": "A cooperative bank opens in Dakar",
}
# Topic set (slugs) -> the titles its readers get, in the issue's order (newest first).
SETS: dict[tuple[str, ...], list[str]] = {
    (): ["heat", "fair", "payroll", "bank"],
    ("climate",): ["heat", "bank"],
    ("coops", "jobs"): ["fair", "payroll", "bank"],
}


def _seed(session: Session) -> tuple[int, dict[str, tuple[tuple[str, ...], str]]]:
    lst = create_list(session, slug="ssef", name="SSE Forum", lookback_days=30)
    lst.send_local_time = "09:00"
    climate = Source(name="Climate desk", url="http://127.0.0.1/climate", kind="html")
    jobs = Source(name="Jobs board", url="http://127.0.0.1/jobs", kind="html")
    session.add_all([climate, jobs])
    session.flush()
    link_source(session, lst.id, climate.id)
    link_source(session, lst.id, jobs.id)
    rows = [
        ("heat", climate, [], 1),
        ("fair", jobs, ["Employment"], 2),
        ("payroll", jobs, ["employment"], 3),
        ("bank", climate, ["Finance"], 4),
    ]
    for key, source, categories, hours in rows:
        session.add(
            Item(
                source_id=source.id,
                guid=key,
                url=f"http://127.0.0.1/{key}",
                canonical_url=f"http://127.0.0.1/{key}",
                title=TITLES[key],
                summary_text="Words.",
                summary_html="<p>Words.</p>",
                categories=categories,
                published_at=START - timedelta(hours=hours),
                first_seen_at=START - timedelta(hours=hours),
            )
        )
    define_topic(session, lst, "climate", "Climate", source_ids=[climate.id])
    define_topic(session, lst, "jobs", "Jobs", categories=["EMPLOYMENT"])
    define_topic(session, lst, "coops", "Co-operatives", keywords=["Cooperative"])
    define_topic(session, lst, "arts", "Arts", keywords=["opera"])
    readers: dict[str, tuple[tuple[str, ...], str]] = {}
    sets = [*SETS, ("arts",)]
    for n, topics in enumerate(sets):
        for zone in ZONES if topics != ("arts",) else ["UTC"]:
            email = f"r{n}-{zone.replace('/', '-').lower()}@example.org"
            subscriber = Subscriber(email=email)
            session.add(subscriber)
            session.flush()
            subscription = Subscription(
                list_id=lst.id, subscriber_id=subscriber.id, status=SubscriptionStatus.CONFIRMED
            )
            session.add(subscription)
            session.flush()
            update_preferences(session, subscription.id, timezone=zone, topics=list(topics))
            readers[email] = (topics, zone)
    session.commit()
    return lst.id, readers


def _send_due(sf: sessionmaker[Session], issue_id: int, outbox: Path) -> None:
    transport = MaildirTransport(outbox)
    while send_batch(sf, issue_id, "test", transport, get_settings(), size=7).claimed:
        pass


def test_each_reader_gets_their_topics_at_nine_in_their_zone(
    session: Session, db_url: str, tmp_path: Path
) -> None:
    list_id, readers = _seed(session)
    sf = session_factory(db_url)
    outbox = tmp_path / "outbox"
    with time_machine.travel(START, tick=False) as clock:
        issue = compose_issue(session, list_id)
        assert issue is not None
        issue_id = issue.id
        approval = approve_issue(session, issue_id, get_settings())
        # Three sets in use, one set with nothing, and the full variant: four renderings.
        assert approval.variants == 4
        summaries = {s.topics: (s.readers, s.items) for s in variant_summaries(session, issue_id)}
        assert summaries == {
            (): (5, 4),
            ("Climate",): (5, 2),
            ("Jobs", "Co-operatives"): (5, 3),
            ("Arts",): (1, 0),
        }
        assert start_sending(session, issue_id).planned == 16
        session.commit()

        waves = [(w.due_at, w.deliveries) for w in waves_to_come(session, issue_id)]
        assert waves == sorted((due, 3) for due in DUE.values())

        sent_at: dict[str, datetime] = {}
        moment = START
        while moment <= START + timedelta(hours=26):
            clock.move_to(moment)
            _send_due(sf, issue_id, outbox)
            for copy in maildir_copies(outbox):
                sent_at.setdefault(copy.envelope_to, moment)
            with sf.begin() as s:
                done = finish_issue_if_done(s, issue_id)
            due_left = [d for d in DUE.values() if d > moment]
            assert done is (not due_left), moment
            moment += timedelta(minutes=30)

    copies = {c.envelope_to: c.message for c in maildir_copies(outbox)}
    arts_reader = next(e for e, (t, _) in readers.items() if t == ("arts",))
    assert set(copies) == set(readers) - {arts_reader}
    for email, (topics, zone) in readers.items():
        if topics == ("arts",):
            continue
        # Sent in the half hour after the reader's 09:00, not before.
        assert DUE[zone] <= sent_at[email] < DUE[zone] + timedelta(minutes=30), email
        body = copies[email].get_body(("plain",))
        assert body is not None
        text = body.get_content()
        present = [key for key in TITLES if TITLES[key] in text]
        assert present == SETS[topics], email
        # In the issue's order: newest first.
        positions = [text.index(TITLES[key]) for key in present]
        assert positions == sorted(positions)
    with sf() as s:
        skipped = s.scalars(select(Delivery).where(Delivery.email == arts_reader)).one()
        assert skipped.status == DeliveryStatus.SKIPPED
        assert skipped.last_error == NOTHING_FOR_THEM
        assert s.scalar(select(Issue.status).where(Issue.id == issue_id)) == IssueStatus.SENT


def test_a_reader_who_chooses_topics_after_approval_gets_their_edition_in_full(
    session: Session, db_url: str
) -> None:
    """Planning finds every reader a copy: one whose topic set has no variant (chosen after
    approval) gets their edition's full variant, never nothing."""
    list_id, readers = _seed(session)
    with time_machine.travel(START, tick=False):
        issue = compose_issue(session, list_id)
        assert issue is not None
        approve_issue(session, issue.id, get_settings())
        email = next(e for e, (t, _) in readers.items() if t == ("climate",))
        subscription = session.scalars(
            select(Subscription).join(Subscriber).where(Subscriber.email == email)
        ).one()
        update_preferences(session, subscription.id, topics=["jobs"])
        start_sending(session, issue.id)
        session.commit()
        row = session.scalars(select(Delivery).where(Delivery.email == email)).one()
        full = next(v for v in variant_summaries(session, issue.id) if v.topics == ())
        assert row.variant_id == full.id and row.status == DeliveryStatus.PENDING

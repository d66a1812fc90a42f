"""The admin's actions on one subscriber, on both stores, through their service functions:
add by hand (the consent rule of the import), edit, unsubscribe from one list or all, export
one person's data and erase them (a hashed suppression stays, the issues' totals stay right),
the streamed export of a list (CSV injection neutralised) and the suppression list."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.errors import DigestError, NotFound
from digest.models import (
    Delivery,
    DeliveryStatus,
    Event,
    EventKind,
    MailingList,
    SignupRequest,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from digest.retention import issue_totals
from digest.subscribers import export, gdpr, manage, suppression
from digest.subscribers.lists import create_list
from digest.subscribers.service import import_rows
from digest.subscribers.topics import define_topic


def two_lists(session: Session) -> tuple[int, int]:
    news = create_list(session, slug="news", name="News")
    jobs = create_list(session, slug="jobs", name="Jobs")
    session.flush()
    return news.id, jobs.id


def statuses(session: Session, subscriber_id: int) -> dict[int, str]:
    rows = session.execute(
        select(Subscription.list_id, Subscription.status).where(
            Subscription.subscriber_id == subscriber_id
        )
    )
    return {list_id: str(status) for list_id, status in rows}


def asked(session: Session, email: str) -> int:
    query = select(func.count()).select_from(SignupRequest).where(SignupRequest.email == email)
    return int(session.scalar(query) or 0)


def test_add_by_hand_follows_the_consent_rule(session: Session) -> None:
    news, jobs = two_lists(session)
    added = manage.add_by_hand(
        session, "Ana@Example.ORG", [news, jobs], name="Ana", consent_recorded=True
    )
    assert added.email == "ana@example.org"
    assert statuses(session, added.subscriber_id) == {news: "confirmed", jobs: "confirmed"}
    assert asked(session, "ana@example.org") == 0

    pending = manage.add_by_hand(session, "bo@example.org", [news], consent_recorded=False)
    assert statuses(session, pending.subscriber_id) == {news: "pending"}
    assert asked(session, "bo@example.org") == 1
    event = session.scalar(select(Event).where(Event.subscriber_id == pending.subscriber_id))
    assert event is not None and event.detail["via"] == "admin"


@pytest.mark.parametrize(
    "bad",
    [
        "not-an-address",
        "a@b",
        "ana@example.org\r\nBcc: x@example.org",
        "\u202eana@example.org",
        "x" * 400 + "@example.org",
        "",
    ],
)
def test_add_by_hand_refuses_what_a_sign_up_refuses(session: Session, bad: str) -> None:
    news, _ = two_lists(session)
    with pytest.raises(DigestError):
        manage.add_by_hand(session, bad, [news], consent_recorded=True)
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_add_by_hand_needs_known_lists(session: Session) -> None:
    news, _ = two_lists(session)
    with pytest.raises(NotFound):
        manage.add_by_hand(session, "ana@example.org", [news, 99_999], consent_recorded=True)
    with pytest.raises(DigestError):
        manage.add_by_hand(session, "ana@example.org", [], consent_recorded=True)


def test_edit_name_language_zone_topics_and_status(session: Session) -> None:
    news, jobs = two_lists(session)
    lst = session.get_one(MailingList, news)
    define_topic(session, lst, "coops", "Co-ops", keywords=["coop"])
    define_topic(session, lst, "jobs", "Jobs", keywords=["job"])
    added = manage.add_by_hand(session, "ana@example.org", [news, jobs], consent_recorded=False)
    huge = "Ana " + "\u0301" * 5 + "x" * 5000 + "\u0000\n"
    changed = manage.edit(
        session,
        added.subscriber_id,
        name=huge,
        language="fr",
        timezone="Europe/Paris",
        topics={news: ["coops"]},
        statuses={news: SubscriptionStatus.CONFIRMED, jobs: SubscriptionStatus.UNSUBSCRIBED},
    )
    assert changed == [
        "name",
        "language",
        "timezone",
        f"topics:{news}",
        f"status:{news}",
        f"status:{jobs}",
    ]
    person = session.get_one(Subscriber, added.subscriber_id)
    assert len(person.name) <= 200 and "\n" not in person.name and "\x00" not in person.name
    assert (person.language, person.timezone) == ("fr", "Europe/Paris")
    assert statuses(session, added.subscriber_id) == {news: "confirmed", jobs: "unsubscribed"}
    # Nothing changes twice; an admin cannot bring back who left.
    assert manage.edit(session, added.subscriber_id, name=huge) == []
    with pytest.raises(DigestError, match="only the person can come back"):
        manage.edit(session, added.subscriber_id, statuses={jobs: SubscriptionStatus.CONFIRMED})
    with pytest.raises(DigestError):
        manage.edit(session, added.subscriber_id, timezone="Mars/Olympus")
    with pytest.raises(DigestError):
        manage.edit(session, added.subscriber_id, topics={news: ["no-such-topic"]})
    with pytest.raises(NotFound):
        manage.edit(session, 999_999, name="x")


def test_unsubscribe_one_list_or_all_is_an_event_via_admin(session: Session) -> None:
    news, jobs = two_lists(session)
    added = manage.add_by_hand(session, "ana@example.org", [news, jobs], consent_recorded=True)
    assert manage.unsubscribe(session, added.subscriber_id, news) == [news]
    assert manage.unsubscribe(session, added.subscriber_id, news) == []  # once
    assert manage.unsubscribe(session, added.subscriber_id) == [jobs]
    assert set(statuses(session, added.subscriber_id).values()) == {"unsubscribed"}
    events = session.scalars(
        select(Event).where(
            Event.subscriber_id == added.subscriber_id, Event.kind == EventKind.UNSUBSCRIBED
        )
    ).all()
    assert [e.detail["via"] for e in events] == ["admin", "admin"]


def sent_issue(session: Session, list_id: int, subscriber_id: int, email: str) -> int:
    """A sent delivery of an issue, as the ledger leaves it."""
    sub = session.scalar(select(Subscription).where(Subscription.subscriber_id == subscriber_id))
    assert sub is not None
    issue_id = 7
    session.add(
        Delivery(
            issue_id=issue_id,
            subscriber_id=subscriber_id,
            subscription_id=sub.id,
            email=email,
            status=DeliveryStatus.SENT,
        )
    )
    session.flush()
    return issue_id


def test_person_data_and_erase(session: Session) -> None:
    news, jobs = two_lists(session)
    ana = manage.add_by_hand(
        session, "ana@example.org", [news, jobs], name="Ana", consent_recorded=False
    )
    other = manage.add_by_hand(session, "bo@example.org", [news], consent_recorded=True)
    issue_id = sent_issue(session, news, ana.subscriber_id, ana.email)
    suppression.suppress(session, ana.email, SuppressionReason.BOUNCE, "550 no such user")

    data = gdpr.person_data(session, ana.subscriber_id)
    json.dumps(data)  # plain JSON values
    assert data["subscriber"]["email"] == "ana@example.org"
    assert {s["list"] for s in data["subscriptions"]} == {"news", "jobs"}
    assert len(data["deliveries"]) == 1 and data["suppression"]["reason"] == "bounce"
    assert len(data["signup_requests"]) == 2 and data["events"]

    done = gdpr.erase(session, ana.subscriber_id)
    assert (done.subscriptions, done.deliveries, done.signup_requests) == (2, 1, 2)
    session.flush()
    assert session.get(Subscriber, ana.subscriber_id) is None
    for model, column in (
        (Subscription, Subscription.subscriber_id),
        (Event, Event.subscriber_id),
        (Delivery, Delivery.subscriber_id),
    ):
        left = session.scalar(
            select(func.count()).select_from(model).where(column == ana.subscriber_id)
        )
        assert left == 0, model
    # The address is nowhere in clear; its hash is suppressed.
    assert session.scalar(select(func.count()).where(Suppression.email.contains("ana@"))) == 0
    assert suppression.is_suppressed(session, "ANA@example.org")
    assert suppression.is_erased(session, "ana@example.org")
    # The issue's figures keep the delivery.
    assert issue_totals(session, issue_id)[("delivery", "sent")] == 1
    # Never subscribed again by an admin or an import; others untouched.
    with pytest.raises(DigestError, match="erased"):
        manage.add_by_hand(session, "ana@example.org", [news], consent_recorded=True)
    result = import_rows(
        session,
        news,
        io.StringIO("email\nana@example.org\ncy@example.org\n"),
        consent_recorded=True,
    )
    assert result.errors == [(2, "erased at the person's request: not imported")]
    assert result.added == 1
    assert statuses(session, other.subscriber_id) == {news: "confirmed"}
    with pytest.raises(NotFound):
        gdpr.erase(session, ana.subscriber_id)


def test_export_streams_a_list_and_neutralises_formulas(session: Session) -> None:
    news, jobs = two_lists(session)
    names = ['=HYPERLINK("http://evil")', "+1+1", "-2", "@SUM(A1)", " \t=2*3", "Zoë 🙂", "plain"]
    for i, name in enumerate(names):
        manage.add_by_hand(session, f"p{i}@example.org", [news], name=name, consent_recorded=True)
    manage.add_by_hand(session, "=cmd@example.org", [jobs], consent_recorded=True)
    text = "".join(export.chunks(session, export.Selection(list_id=news), export.Format.CSV))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows] == [
        '\'=HYPERLINK("http://evil")',
        "'+1+1",
        "'-2",
        "'@SUM(A1)",
        "'=2*3",
        "Zoë 🙂",
        "plain",
    ]
    assert {r["status"] for r in rows} == {"confirmed"}
    assert not any(c.startswith(("=", "+", "-", "@")) for r in rows for c in r.values())
    everyone = "".join(export.chunks(session, export.Selection(), export.Format.CSV))
    assert "'=cmd@example.org" in everyone
    found = json.loads(
        "".join(export.chunks(session, export.Selection(text="zoë"), export.Format.JSON))
    )
    assert [r["name"] for r in found] == ["Zoë 🙂"]  # JSON keeps the value as it is
    empty = json.loads(
        "".join(export.chunks(session, export.Selection(text="nobody"), export.Format.JSON))
    )
    assert empty == []


def test_the_suppression_list_pages_adds_and_lifts(session: Session) -> None:
    for i in range(12):
        suppression.suppress(session, f"s{i}@example.org", SuppressionReason.BOUNCE)
    entry, added = suppression.add_manual(session, " Hand@Example.ORG ", "asked by phone")
    assert (entry.email, entry.reason, entry.detail, added) == (
        "hand@example.org",
        SuppressionReason.MANUAL,
        "asked by phone",
        True,
    )
    assert suppression.add_manual(session, "hand@example.org") == (entry, False)
    with pytest.raises(DigestError):
        suppression.add_manual(session, "no address")
    seen: list[str] = []
    before = None
    while True:
        page = suppression.page(session, before_id=before, limit=5)
        seen += [r.email for r in page.rows]
        if page.next_before is None:
            break
        before = page.next_before
    assert len(seen) == len(set(seen)) == 13 and seen[0] == "hand@example.org"
    assert [r.email for r in suppression.page(session, text="HAND").rows] == ["hand@example.org"]
    manual = suppression.page(session, reason=SuppressionReason.MANUAL)
    assert [r.detail for r in manual.rows] == ["asked by phone"]
    lifted = suppression.lift(session, manual.rows[0].id)
    assert lifted.email == "hand@example.org"
    assert not suppression.is_suppressed(session, "hand@example.org")
    with pytest.raises(NotFound):
        suppression.lift(session, lifted.id)


def test_an_erased_person_signing_up_again_gets_no_mail(db_url: str, session: Session) -> None:
    from digest.config import get_settings
    from digest.db import session_factory
    from digest.delivery.confirmations import send_confirmations
    from digest.delivery.transport_factory import open_transport
    from digest.models import utcnow

    news, _ = two_lists(session)
    ana = manage.add_by_hand(session, "ana@example.org", [news], consent_recorded=True)
    gdpr.erase(session, ana.subscriber_id)
    session.add(SignupRequest(list_id=news, email="ana@example.org", next_attempt_at=utcnow()))
    session.commit()
    settings = get_settings()
    with open_transport(settings) as transport:
        totals = send_confirmations(session_factory(db_url), transport, settings)
    assert dict(totals) == {"suppressed": 1}
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0

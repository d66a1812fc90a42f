"""The admin's subscriber search and a subscriber's page, on both stores: any part of an
address or a name, filters by list, status and suppression, keyset pages that neither skip nor
repeat anyone, and the record of one person."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from digest.db import is_postgres
from digest.models import Event, EventKind, SubscriptionStatus, Suppression, SuppressionReason
from digest.subscribers import search
from digest.subscribers.lists import create_list
from digest.subscribers.service import add_subscriber
from digest.subscribers.suppression import suppress
from digest.web.app import create_app
from tests.accounts import grant, signed_in


def people(session: Session) -> tuple[int, int]:
    news = create_list(session, slug="news", name="News")
    jobs = create_list(session, slug="jobs", name="Jobs")
    for i in range(30):
        add_subscriber(session, news.id, f"reader{i}@example.org", name=f"Reader {i}")
    add_subscriber(session, news.id, "ana.lopez@coop.example", name="Ana López", status="pending")
    add_subscriber(session, jobs.id, "ana.lopez@coop.example", name="Ana López")
    add_subscriber(session, jobs.id, "100%_real@example.org", name="Percent")
    suppress(session, "reader3@example.org", SuppressionReason.BOUNCE, "550 no such user")
    session.commit()
    return news.id, jobs.id


def emails(page: search.Page) -> list[str]:
    return [r.email for r in page.rows]


def test_search_filters_and_keyset_pages(db_url: str, session: Session) -> None:
    news, jobs = people(session)
    assert emails(search.search(session, search.Query(text="LOPEZ@coop"))) == [
        "ana.lopez@coop.example"
    ]
    assert emails(search.search(session, search.Query(text="Ana Ló"))) == ["ana.lopez@coop.example"]
    # % and _ are letters here, not wildcards.
    assert emails(search.search(session, search.Query(text="0%_"))) == ["100%_real@example.org"]
    assert emails(search.search(session, search.Query(text="%"))) == ["100%_real@example.org"]
    pending = search.Query(list_id=news, status=SubscriptionStatus.PENDING)
    assert emails(search.search(session, pending)) == ["ana.lopez@coop.example"]
    confirmed_jobs = search.Query(list_id=jobs, status=SubscriptionStatus.CONFIRMED)
    assert set(emails(search.search(session, confirmed_jobs))) == {
        "ana.lopez@coop.example",
        "100%_real@example.org",
    }
    supp = search.search(session, search.Query(suppressed=search.Suppressed.YES))
    assert emails(supp) == ["reader3@example.org"] and supp.rows[0].suppressed
    not_supp = search.search(session, search.Query(suppressed=search.Suppressed.NO, limit=500))
    assert len(not_supp.rows) == 31 and "reader3@example.org" not in emails(not_supp)
    assert not any(r.suppressed for r in not_supp.rows)
    flags = {
        r.email: r.suppressed for r in search.search(session, search.Query(text="reader3")).rows
    }
    assert flags == {"reader3@example.org": True}

    # Pages of 7 over the 30 readers of News: each once, newest first, then the end.
    seen: list[str] = []
    query = search.Query(text="reader", list_id=news, limit=7)
    while True:
        page = search.search(session, query)
        seen += emails(page)
        if page.next_before is None:
            break
        query = search.Query(text="reader", list_id=news, limit=7, before_id=page.next_before)
    assert len(seen) == 30 and len(set(seen)) == 30
    assert seen[0] == "reader29@example.org" and seen[-1] == "reader0@example.org"

    # By status over every list (each list walked on its index, then merged): confirmed in
    # News or Jobs, each person once, pages of 4.
    confirmed: list[str] = []
    query = search.Query(status=SubscriptionStatus.CONFIRMED, limit=4)
    while True:
        page = search.search(session, query)
        confirmed += emails(page)
        if page.next_before is None:
            break
        query = search.Query(
            status=SubscriptionStatus.CONFIRMED, limit=4, before_id=page.next_before
        )
    assert len(confirmed) == 32 and len(set(confirmed)) == 32
    assert "ana.lopez@coop.example" in confirmed  # pending in News, confirmed in Jobs
    with_text = search.search(session, search.Query(text="ana", status=SubscriptionStatus.PENDING))
    assert emails(with_text) == ["ana.lopez@coop.example"]


def every_page(session: Session, query: search.Query) -> list[str]:
    """The addresses of every page of `query`, following the keyset to the end."""
    seen: list[str] = []
    while True:
        page = search.search(session, query)
        seen += emails(page)
        if page.next_before is None:
            return seen
        query = search.Query(
            query.text, query.list_id, query.status, query.suppressed, page.next_before, query.limit
        )


def test_text_and_suppression_alike_by_hash_or_by_join(db_url: str, session: Session) -> None:
    _, jobs = people(session)
    for i in range(30, 60):
        add_subscriber(session, jobs, f"reader{i}@example.org", name=f"Reader {i}")
    for i in range(0, 60, 4):  # reader3 is suppressed already
        suppress(session, f"reader{i}@example.org", SuppressionReason.COMPLAINT, "")
    suppress(session, "ana.lopez@coop.example", SuppressionReason.BOUNCE, "550")
    session.commit()
    # Newest first: readers 56, 52, ... 4, 3, 0 (30 and up in Jobs); Ana by her name only.
    numbers = [*range(56, 0, -4), 3, 0]
    queries = {
        search.Query(text="READER", suppressed=search.Suppressed.YES, limit=4): [
            f"reader{i}@example.org" for i in numbers
        ],
        search.Query(text="reader", list_id=jobs, suppressed=search.Suppressed.YES, limit=3): [
            f"reader{i}@example.org" for i in numbers if i >= 30
        ],
        search.Query(text="López", suppressed=search.Suppressed.YES): ["ana.lopez@coop.example"],
        search.Query(text="reader3@", suppressed=search.Suppressed.YES): ["reader3@example.org"],
    }
    for query, expected in queries.items():
        assert every_page(session, query) == expected, query
    assert all(r.suppressed for r in search.search(session, next(iter(queries))).rows)
    assert search.hashed_suppressions(session)
    if not is_postgres(session):
        return
    # A suppression list too large to hash in hash_mem: the search joins instead, and finds
    # the same.
    session.execute(
        insert(Suppression),
        [
            {"email": f"gone{i}@elsewhere.example", "reason": SuppressionReason.BOUNCE}
            for i in range(1000)
        ],
    )
    session.execute(sql("SET LOCAL work_mem = '64kB'"))
    session.execute(sql("SET LOCAL hash_mem_multiplier = 1"))
    assert not search.hashed_suppressions(session)
    for query, expected in queries.items():
        assert every_page(session, query) == expected, query


def test_the_admin_pages_show_the_search_and_a_subscribers_record(
    db_url: str, session: Session
) -> None:
    news, _ = people(session)
    for i in range(30, 60):  # 61 in News: two pages of 50
        add_subscriber(session, news, f"reader{i}@example.org", name=f"Reader {i}")
    grant(session)
    admin = signed_in(TestClient(create_app(), follow_redirects=False))
    found = admin.get("/editor/subscribers?q=lopez")
    assert found.status_code == 200
    assert "ana.lopez@coop.example" in found.text and "reader1@" not in found.text
    first = admin.get(f"/editor/subscribers?list={news}")
    assert "Next page" in first.text and "reader59@example.org" in first.text
    assert "reader0@example.org" not in first.text
    link = re.search(r'href="([^"]+)">Next page', first.text)
    assert link
    second = admin.get(html.unescape(link.group(1)))
    assert "reader0@example.org" in second.text and "reader59@" not in second.text
    assert "Next page" not in second.text
    suppressed = admin.get("/editor/subscribers?suppressed=yes")
    assert "reader3@example.org" in suppressed.text and "reader4@" not in suppressed.text
    assert admin.get("/editor/subscribers?status=bogus").status_code == 400
    # The filter form as a browser sends it: every field, the unused ones empty.
    empty = admin.get("/editor/subscribers?q=lopez&list=&status=&suppressed=")
    assert empty.status_code == 200 and "ana.lopez@coop.example" in empty.text

    ana = search.search(session, search.Query(text="ana.lopez")).rows[0]
    session.add(Event(kind=EventKind.CONFIRMED, subscriber_id=ana.id, list_id=news))
    session.commit()
    page = admin.get(f"/editor/subscribers/{ana.id}")
    assert page.status_code == 200
    for text in ("Ana López", "News", "Jobs", "pending", "confirmed", "Not suppressed"):
        assert text in page.text, text
    reader3 = search.search(session, search.Query(text="reader3@")).rows[0]
    page = admin.get(f"/editor/subscribers/{reader3.id}")
    assert "550 no such user" in page.text and "bounce" in page.text
    assert admin.get("/editor/subscribers/999999").status_code == 404

"""The preferences page lets a reader choose their edition, time zone and topics (issue 11)."""

from __future__ import annotations

import re

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from digest.config import get_settings, reset_settings
from digest.issues.compose import compose_issue
from digest.issues.variants import variant_summaries
from digest.models import MailingList, Source, Subscriber, Subscription
from digest.pipeline import approve_issue, start_sending
from digest.subscribers.lists import link_source
from digest.subscribers.topics import define_topic
from digest.web.app import create_app
from tests.helpers import token


def _seed(session: Session) -> tuple[int, dict[str, int]]:
    lst = MailingList(slug="sse", name="SSE News", editions=["fr", "es"], timezone="UTC")
    source = Source(name="Desk", url="http://127.0.0.1/desk", kind="html")
    subscriber = Subscriber(email="ana@example.org", name="Ana")
    session.add_all([lst, source, subscriber])
    session.flush()
    link_source(session, lst.id, source.id)
    topics = {
        slug: define_topic(session, lst, slug, name, keywords=[slug]).id
        for slug, name in (("climate", "Climate"), ("jobs", "Jobs <b>&</b> work"))
    }
    subscription = Subscription(list_id=lst.id, subscriber_id=subscriber.id, status="confirmed")
    session.add(subscription)
    session.commit()
    return subscription.id, topics


def test_a_reader_chooses_edition_time_zone_and_topics(session: Session, db_url: str) -> None:
    subscription_id, topics = _seed(session)
    client = TestClient(create_app(), follow_redirects=False)
    path = f"/p/{token('preferences', subscription_id)}"

    page = client.get(path).text
    assert '<option value="fr" lang="fr">Français</option>' in page
    assert '<option value="es" lang="es">Español</option>' in page
    assert "<option>Pacific/Auckland</option>" in page
    assert 'name="topic" value="climate"> Climate' in page
    assert "Jobs &lt;b&gt;&amp;&lt;/b&gt; work" in page  # a topic's name is text

    form = {"action": "save", "language": "fr", "timezone": "Asia/Tokyo", "topics_shown": "1"}
    saved = client.post(path, data={**form, "topic": ["jobs", "climate"]})
    assert saved.status_code == 303
    session.expire_all()
    subscription = session.get(Subscription, subscription_id)
    assert subscription is not None
    assert subscription.topic_ids == ",".join(str(i) for i in sorted(topics.values()))
    assert (subscription.subscriber.language, subscription.subscriber.timezone) == (
        "fr",
        "Asia/Tokyo",
    )
    page = client.get(path).text
    assert '<option value="fr" lang="fr" selected>' in page
    assert "<option selected>Asia/Tokyo</option>" in page
    assert 'value="jobs" checked>' in page

    # Nothing ticked: everything again. The name alone (an older form) leaves topics be.
    client.post(path, data={**form, "topic": ["jobs"]})
    client.post(path, data={"action": "save", "name": "Ana"})
    session.expire_all()
    assert session.get(Subscription, subscription_id).topic_ids == str(topics["jobs"])  # type: ignore[union-attr]
    client.post(path, data=form)
    session.expire_all()
    assert session.get(Subscription, subscription_id).topic_ids == ""  # type: ignore[union-attr]

    # Values no form offers: a 400, and nothing changes.
    for bad in (
        {"timezone": "Mars/Olympus"},
        {"language": "<script>"},
        {"topic": "nope", "topics_shown": "1"},
    ):
        answer = client.post(path, data={"action": "save", **bad})
        assert answer.status_code == 400, bad
    session.expire_all()
    subscriber = session.get(Subscription, subscription_id).subscriber  # type: ignore[union-attr]
    assert (subscriber.language, subscriber.timezone) == ("fr", "Asia/Tokyo")


def test_the_editor_previews_each_variant_with_its_readers(
    session: Session, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.models import Role
    from tests.accounts import grant, signed_in
    from tests.integration.test_readers_topics_time import START, TITLES, _seed

    list_id, _ = _seed(session)
    with time_machine.travel(START, tick=False):
        issue = compose_issue(session, list_id)
        assert issue is not None
        approve_issue(session, issue.id, get_settings())
        start_sending(session, issue.id)
        session.commit()
        grant(session, Role.VIEWER)
        reset_settings()
        client = signed_in(TestClient(create_app(), follow_redirects=False), Role.VIEWER)
        page = client.get(f"/editor/issues/{issue.id}").text
        # The session signed in on the fake clock ends on it: the rest is read there too.
        climate = next(v for v in variant_summaries(session, issue.id) if v.topics == ("Climate",))
        framed = client.get(f"/editor/issues/{issue.id}/preview?variant={climate.id}").text
        missing = client.get(f"/editor/issues/{issue.id}/preview?variant=999999").status_code
    assert f"variant={climate.id}#preview-heading" in page
    assert re.search(r"<td>Arts</td>\s*<td>1</td>\s*<td>0: no mail</td>", page), page
    assert re.search(r">Climate</a></td>\s*<td>5</td>\s*<td>2</td>", page)
    assert "Waves to come" in page and "2026-03-02 14:00 UTC: 3" in page
    shown = [key for key, title in TITLES.items() if title in framed]
    assert shown == ["heat", "bank"]
    assert missing == 404

"""An editor's proof copy of a draft: real rendering, sent to the maildir, no ledger touched."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.config import get_settings
from digest.delivery.maildir import MaildirTransport
from digest.errors import DigestError
from digest.issues.compose import compose_issue
from digest.issues.proof import send_proof
from digest.models import Delivery, Item, Source, utcnow
from digest.subscribers.lists import create_list, link_source
from tests.helpers import outbox_messages, parts


def test_proof_of_a_draft(session: Session, tmp_path: Path) -> None:
    lst = create_list(session, slug="news", name="News")
    source = Source(name="Site", url="http://127.0.0.1/news", kind="html")
    session.add(source)
    session.flush()
    link_source(session, lst.id, source.id)
    session.add(
        Item(
            source_id=source.id,
            guid="g",
            url="http://127.0.0.1/a",
            title="Café news",
            published_at=utcnow() - timedelta(days=1),
        )
    )
    session.flush()
    issue = compose_issue(session, lst.id)
    assert issue is not None and issue.status == "draft"

    transport = MaildirTransport(tmp_path / "box")
    results = send_proof(session, issue.id, ["Editor@Example.org"], transport, get_settings())
    assert [(r.email, r.outcome) for r in results] == [("editor@example.org", "sent")]
    (msg,) = outbox_messages(tmp_path / "box")
    assert str(msg["Subject"]).startswith("[Proof] ")
    text, html = parts(msg)
    assert "Café news" in html and "Café news" in text
    assert session.scalar(select(func.count()).select_from(Delivery)) == 0

    with pytest.raises(DigestError):
        send_proof(session, issue.id, ["not an address"], transport, get_settings())

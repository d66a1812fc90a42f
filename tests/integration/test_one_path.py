"""One path per action: the CLI, the editor's pages and the API hand an issue to the senders by
the same rules (`digest.pipeline`), refuse alike, and count progress the one way the ledger
does (`digest.delivery.ledger.Progress`)."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from rich.progress import Progress as Bar
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.cli import sending
from digest.config import get_settings
from digest.delivery.ledger import issue_progress
from digest.models import Delivery, Issue, IssueStatus, Subscription
from digest.pipeline import approve_issue, start_sending
from digest.subscribers.actions import unsubscribe
from digest.web.app import create_app
from tests.accounts import grant, signed_in
from tests.helpers import run_digest
from tests.integration.test_editor_api import API, Seeded, seed_issue
from tests.integration.test_editor_pages import post


@pytest.fixture
def seeded(session: Session) -> Seeded:
    return seed_issue(session, subscribers=4)


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    grant(db_url)
    with TestClient(create_app(), follow_redirects=False, headers=API) as c:
        yield signed_in(c)  # the API by its token, the editor's forms by the session


def cli(db_url: str, *args: str) -> tuple[int, str]:
    """The real `digest` command on this store: its exit code and its stderr."""
    env = {
        "DIGEST_DATABASE_URL": db_url,
        "DIGEST_SECRET_KEY": "test-secret",
        "DIGEST_PUBLIC_URL": "https://digest.example.org",
    }
    done = run_digest(*args, env=env)
    return done.returncode, done.stderr.strip()


def planned(session: Session, issue_id: int) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).where(Delivery.issue_id == issue_id)) or 0)


def status(session: Session, issue_id: int) -> IssueStatus:
    session.expire_all()
    issue = session.get(Issue, issue_id)
    assert issue is not None
    return issue.status


def test_an_issue_already_sending_is_refused_alike_by_the_cli_the_editor_and_the_api(
    db_url: str, session: Session, seeded: Seeded, client: TestClient
) -> None:
    issue_id = seeded.issue_id
    approve_issue(session, issue_id, get_settings())
    start_sending(session, issue_id)
    session.commit()
    assert planned(session, issue_id) == 4
    refusal = f"issue {issue_id} is sending; only an approved issue is sent; resume restarts it"

    assert cli(db_url, "issues", "send", str(issue_id)) == (2, f"error: {refusal}")

    api = client.post(f"/api/v1/issues/{issue_id}/send")
    assert (api.status_code, api.json()) == (400, {"detail": refusal})

    page = post(client, f"/editor/issues/{issue_id}/send", {"confirm": "yes"})
    assert page.status_code == 409 and html.escape(refusal) in page.text

    # Nobody planned twice or sent from a second sender: the issue waits for its own.
    assert planned(session, issue_id) == 4
    assert status(session, issue_id) == IssueStatus.SENDING
    assert issue_progress(session, issue_id).pending == 4


def test_only_a_paused_or_stalled_issue_is_resumed_and_everywhere_alike(
    db_url: str, session: Session, seeded: Seeded, client: TestClient
) -> None:
    issue_id = seeded.issue_id
    approve_issue(session, issue_id, get_settings())
    session.commit()
    refusal = f"issue {issue_id} is approved; this needs it to be paused or sending"

    assert cli(db_url, "issues", "resume", str(issue_id)) == (2, f"error: {refusal}")
    api = client.post(f"/api/v1/issues/{issue_id}/resume")
    assert (api.status_code, api.json()) == (400, {"detail": refusal})
    page = post(client, f"/editor/issues/{issue_id}/resume")
    assert page.status_code == 409 and html.escape(refusal) in page.text
    assert status(session, issue_id) == IssueStatus.APPROVED and planned(session, issue_id) == 0


def test_the_cli_progress_bar_counts_settled_rows_as_the_ledger_does(
    db_url: str, session: Session, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row skipped at its turn (its reader unsubscribed after planning) is settled: the bar
    of an in-process send ends full, as `issues status` and the editor count it."""
    issue_id = seeded.issue_id
    approve_issue(session, issue_id, get_settings())
    start_sending(session, issue_id)
    gone = session.scalars(
        select(Subscription).where(
            Subscription.list_id == seeded.list_id, Subscription.status == "confirmed"
        )
    )
    unsubscribe(session, next(iter(gone)).id, via="web")
    session.commit()
    bars: list[Bar] = []

    def recorded() -> Bar:
        bars.append(Bar(disable=True))
        return bars[-1]

    monkeypatch.setattr(sending, "progress_bar", recorded)
    counts = sending.send_inline(issue_id, get_settings())
    assert (counts.sent, counts.skipped, counts.total) == (3, 1, 4)
    (task,) = bars[0].tasks
    assert (task.completed, task.total) == (counts.settled, counts.total) == (4, 4)
    assert sending.describe(counts) == "3 of 4 sent, 1 skipped"

"""An approved issue goes back to draft; a cancelled issue's items go back to the pool.

Through the CLI (a real process) and the library's one path, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from digest.config import get_settings
from digest.issues import lifecycle
from digest.issues.compose import compose_issue
from digest.models import Issue, IssueStatus
from digest.pipeline import approve_issue
from tests.helpers import run_digest
from tests.integration.test_editor_api import TITLES, seed_issue


def _titles(issue: Issue) -> list[str]:
    return [ii.item.title for ii in sorted(issue.issue_items, key=lambda ii: ii.position)]


def test_an_approved_issue_goes_back_to_draft_and_is_rendered_anew(
    session: Session, db_url: str
) -> None:
    seeded = seed_issue(session)
    approve_issue(session, seeded.issue_id, get_settings())
    session.commit()
    first_marker = session.get(Issue, seeded.issue_id).slot_marker  # type: ignore[union-attr]
    env = {"DIGEST_DATABASE_URL": db_url}

    done = run_digest("issues", "to-draft", str(seeded.issue_id), env=env)
    assert done.returncode == 0, done.stderr
    assert f"issue {seeded.issue_id} is draft" in done.stdout
    session.expire_all()
    issue = session.get(Issue, seeded.issue_id)
    assert issue is not None and issue.status == IssueStatus.DRAFT
    assert (issue.html, issue.text, issue.slot_marker, issue.message_template) == (None,) * 4
    assert issue.approved_at is None and issue.render_warnings == []

    lifecycle.edit_draft(session, seeded.issue_id, subject="Co-op News, corrected")
    approve_issue(session, seeded.issue_id, get_settings())
    session.commit()
    assert issue.slot_marker not in {None, first_marker}  # a new render, a new marker
    assert "Co-op News, corrected" in (issue.html or "")

    # Back once more; then it is a draft, and a draft is refused, in one line.
    again = run_digest("issues", "to-draft", str(seeded.issue_id), env=env)
    assert again.returncode == 0, again.stderr
    refused = run_digest("issues", "to-draft", str(seeded.issue_id), env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "is draft" in refused.stderr


def test_a_cancelled_issues_items_go_back_to_the_pool(session: Session, db_url: str) -> None:
    seeded = seed_issue(session)
    first = session.get(Issue, seeded.issue_id)
    assert first is not None and sorted(_titles(first)) == sorted(TITLES)
    approve_issue(session, seeded.issue_id, get_settings())
    session.commit()
    assert compose_issue(session, seeded.list_id) is None  # the approved issue holds them all

    done = run_digest("issues", "cancel", str(seeded.issue_id), env={"DIGEST_DATABASE_URL": db_url})
    assert done.returncode == 0, done.stderr
    session.expire_all()
    cancelled = session.get(Issue, seeded.issue_id)
    assert cancelled is not None and cancelled.status == IssueStatus.CANCELLED
    assert cancelled.html is not None  # its frozen copy stays, for the record

    second = compose_issue(session, seeded.list_id)
    assert second is not None
    session.commit()
    assert second.number == first.number + 1
    assert sorted(_titles(second)) == sorted(TITLES)

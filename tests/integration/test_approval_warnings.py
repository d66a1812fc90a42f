"""Warnings before approval reach the editor: the draft's preview and the approval say them,
and the frozen issue keeps them for the editor's page and the API."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Issue, IssueItem, Item
from tests.helpers import run_digest
from tests.integration.test_editor_api import seed_issue


def test_a_link_off_its_source_is_warned_about_in_preview_and_approval(
    session: Session, db_url: str, tmp_path: Path
) -> None:
    seeded = seed_issue(session)
    item = session.scalars(
        select(Item).join(IssueItem).where(IssueItem.issue_id == seeded.issue_id).limit(1)
    ).one()
    item.url = "https://coop-example.login.test/verify"
    session.commit()
    env = {"DIGEST_DATABASE_URL": db_url, "DIGEST_SECRET_KEY": "test-secret"}
    expected = "links to coop-example.login.test, not to coop.example.org"

    preview = run_digest(
        "issues", "preview", str(seeded.issue_id), "--out", str(tmp_path / "p.html"), env=env
    )
    assert preview.returncode == 0, preview.stderr
    assert expected in preview.stderr

    approved = run_digest("issues", "approve", str(seeded.issue_id), env=env)
    assert approved.returncode == 0, approved.stderr
    assert expected in approved.stderr
    session.expire_all()
    issue = session.get(Issue, seeded.issue_id)
    assert issue is not None
    assert any(expected in w for w in issue.render_warnings)

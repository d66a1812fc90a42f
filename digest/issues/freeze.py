"""An issue rendered once and frozen: HTML and text with their slots, stored on the issue.

(`digest.render.issue` renders a plain IssueView; this applies it to a stored issue.)
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from digest.config import Settings
from digest.errors import DigestError
from digest.issues.build_view import build_issue_view
from digest.issues.lifecycle import get_issue
from digest.models import Issue
from digest.placeholders import Slots
from digest.render.issue import render_issue
from digest.render.view import RenderedIssue


def issue_slots(issue: Issue) -> Slots:
    """The slots the issue's frozen HTML and text were rendered with."""
    if issue.slot_marker is None:
        raise DigestError(f"issue {issue.id} is not rendered yet")
    return Slots(issue.slot_marker)


def freeze_issue(session: Session, issue_id: int, settings: Settings) -> RenderedIssue:
    """Render once and store HTML, text, their slot marker and warnings on the issue.

    render_issue has checked the HTML against the allow-list: an issue that fails it raises
    UnsafeHtmlError here and nothing is stored.
    """
    issue = get_issue(session, issue_id)
    view = build_issue_view(session, issue_id, settings)
    rendered = render_issue(view, size_warning_bytes=settings.html_size_warning_bytes)
    issue.html = rendered.html
    issue.text = rendered.text
    issue.slot_marker = rendered.slots.marker
    issue.render_warnings = list(rendered.warnings)
    session.flush()
    return rendered

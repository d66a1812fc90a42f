"""Render an issue once and freeze it: HTML and text with slots, then the MIME template."""

from __future__ import annotations

from sqlalchemy.orm import Session

from digest import placeholders
from digest.config import get_settings
from digest.errors import DigestError
from digest.issues.lifecycle import get_issue
from digest.issues.view import build_issue_view
from digest.models import Issue
from digest.placeholders import Slots
from digest.render.issue import render_issue
from digest.render.view import RenderedIssue


def issue_slots(issue: Issue) -> Slots:
    """The slots the issue's frozen HTML and text were rendered with."""
    if issue.slot_marker is None:
        raise DigestError(f"issue {issue.id} is not rendered yet")
    return Slots(issue.slot_marker)


def render_preview(session: Session, issue_id: int) -> RenderedIssue:
    """What the issue looks like now (a draft is rendered afresh; nothing is stored)."""
    issue = get_issue(session, issue_id)
    if issue.html is not None and issue.text is not None and issue.status != "draft":
        warnings = tuple(issue.render_warnings or ())
        return RenderedIssue(issue.html, issue.text, warnings, issue_slots(issue))
    view = build_issue_view(session, issue_id)
    rendered = render_issue(view, size_warning_bytes=get_settings().html_size_warning_bytes)
    # A draft's preview also carries what compose noted, so the editor sees it before approving.
    notes = tuple(issue.compose_notes or ())
    return RenderedIssue(rendered.html, rendered.text, notes + rendered.warnings, rendered.slots)


def freeze_issue(session: Session, issue_id: int) -> RenderedIssue:
    """Render once and store HTML, text, their slot marker and warnings on the issue.

    render_issue has checked the HTML against the allow-list: an issue that fails it raises
    UnsafeHtmlError here and nothing is stored.
    """
    issue = get_issue(session, issue_id)
    view = build_issue_view(session, issue_id)
    rendered = render_issue(view, size_warning_bytes=get_settings().html_size_warning_bytes)
    issue.html = rendered.html
    issue.text = rendered.text
    issue.slot_marker = rendered.slots.marker
    issue.render_warnings = list(rendered.warnings)
    session.flush()
    return rendered


PREVIEW_VALUES = {
    placeholders.NAME: "Alex Reader",
    placeholders.GREETING_NAME: " Alex Reader",
    placeholders.EMAIL: "alex.reader@example.org",
    placeholders.UNSUBSCRIBE_URL: "#unsubscribe",
    placeholders.PREFERENCES_URL: "#preferences",
    placeholders.VIEW_ONLINE_URL: "#view-online",
}


def personalise_for_preview(body: str, slots: Slots) -> str:
    """Fill the slots with a sample reader, so a preview reads like a real copy."""
    return slots.fill(body, PREVIEW_VALUES)

"""What an issue looks like now, for an editor: a draft rendered afresh (nothing stored), an
approved one as frozen, and either filled in for a sample reader."""

from __future__ import annotations

from sqlalchemy.orm import Session

from digest import placeholders
from digest.config import Settings
from digest.errors import NotFound
from digest.issues.build_view import build_issue_view
from digest.issues.freeze import issue_slots
from digest.issues.lifecycle import get_issue
from digest.models import IssueStatus, IssueVariant
from digest.placeholders import Slots
from digest.render.issue import render_issue
from digest.render.view import RenderedIssue

PREVIEW_VALUES = {
    placeholders.NAME: "Alex Reader",
    placeholders.GREETING_NAME: " Alex Reader",
    placeholders.EMAIL: "alex.reader@example.org",
    placeholders.UNSUBSCRIBE_URL: "#unsubscribe",
    placeholders.PREFERENCES_URL: "#preferences",
    placeholders.VIEW_ONLINE_URL: "#view-online",
}


def render_preview(session: Session, issue_id: int, settings: Settings) -> RenderedIssue:
    """What the issue looks like now (a draft is rendered afresh; nothing is stored)."""
    issue = get_issue(session, issue_id)
    if issue.html is not None and issue.text is not None and issue.status != IssueStatus.DRAFT:
        warnings = tuple(issue.render_warnings or ())
        return RenderedIssue(issue.html, issue.text, warnings, issue_slots(issue))
    view = build_issue_view(session, issue_id, settings)
    rendered = render_issue(view, size_warning_bytes=settings.html_size_warning_bytes)
    # A draft's preview also carries what compose noted, so the editor sees it before approving.
    notes = tuple(issue.compose_notes or ())
    return RenderedIssue(rendered.html, rendered.text, notes + rendered.warnings, rendered.slots)


def personalise_for_preview(body: str, slots: Slots) -> str:
    """Fill the slots with a sample reader, so a preview reads like a real copy."""
    return slots.fill(body, PREVIEW_VALUES)


def render_variant_preview(session: Session, issue_id: int, variant_id: int) -> RenderedIssue:
    """A variant of an approved issue as frozen; NotFound for another issue's or none."""
    variant = session.get(IssueVariant, variant_id)
    if variant is None or variant.issue_id != issue_id:
        raise NotFound(f"issue {issue_id} has no variant {variant_id}")
    if variant.html is None or variant.text is None or variant.slot_marker is None:
        raise NotFound(f"variant {variant_id} holds no item: its readers get no mail")
    warnings = tuple(variant.render_warnings or ())
    return RenderedIssue(variant.html, variant.text, warnings, Slots(variant.slot_marker))

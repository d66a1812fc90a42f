"""The steps of the flow as units the edges run: the CLI in-process, Celery tasks distributed.

Each function takes a Session (or a sessionmaker where it owns several transactions) and ids;
the same code runs inline and on workers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from digest.delivery.errors import DeliveryError
from digest.delivery.ledger import plan_deliveries
from digest.delivery.prepare import prepare_issue_message
from digest.issues.lifecycle import get_issue, mark_approved, mark_sending
from digest.issues.rendering import freeze_issue


@dataclass(frozen=True, slots=True)
class Approval:
    issue_id: int
    warnings: tuple[str, ...]
    html_bytes: int


def approve_issue(session: Session, issue_id: int) -> Approval:
    """Approve a draft: render it once and freeze the message every recipient's copy comes from."""
    mark_approved(session, issue_id)
    rendered = freeze_issue(session, issue_id)
    prepare_issue_message(session, issue_id)
    return Approval(issue_id, rendered.warnings, len(rendered.html.encode()))


def start_sending(session: Session, issue_id: int) -> int:
    """Snapshot the recipients (one delivery row each) and open the issue for senders.

    Planning is idempotent, so a resumed or re-run send never adds a second row per subscriber.
    """
    issue = get_issue(session, issue_id)
    if issue.message_template is None:
        raise DeliveryError(f"issue {issue_id} was not rendered; approve it first")
    mark_sending(session, issue_id)
    return plan_deliveries(session, issue_id)


def approve_if_auto(session: Session, issue_id: int) -> bool:
    """A draft of a list set to auto-approve goes out without an editor: approve it and plan
    its deliveries (the caller hands it to the senders after commit). False: it waits for
    its editor."""
    issue = get_issue(session, issue_id)
    if issue.status != "draft" or not issue.mailing_list.auto_approve:
        return False
    approve_issue(session, issue_id)
    start_sending(session, issue_id)
    return True

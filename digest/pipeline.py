"""The actions on an issue that cross issues, render and delivery, one function each: approve,
hand over to the senders, resume. The CLI, the editor, the API, the workers and the demo call
these and add only their own I/O.

Each takes a Session and does not commit. Handing over returns a `Handover`: the edge that
owns the session commits, then has the issue sent its own way (Celery workers with a broker;
else in-process: the CLI with a progress bar, the web server after its response). Nothing
here knows Celery or a request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from digest.config import Settings
from digest.delivery.errors import DeliveryError
from digest.delivery.ledger import plan_deliveries
from digest.delivery.prepare import prepare_issue_message
from digest.errors import DigestError
from digest.issues import lifecycle
from digest.issues.freeze import freeze_issue
from digest.issues.variants import freeze_variants
from digest.models import IssueStatus


@dataclass(frozen=True, slots=True)
class Approval:
    issue_id: int
    warnings: tuple[str, ...]
    html_bytes: int
    variants: int = 1  # renderings frozen: one per (edition, topic set) among the readers


@dataclass(frozen=True, slots=True)
class Handover:
    """An issue opened to the senders. After its transaction commits, the edge has it sent."""

    issue_id: int
    planned: int  # delivery rows added by this call (0 on a resume)


def approve_issue(session: Session, issue_id: int, settings: Settings) -> Approval:
    """Approve a draft: render it once and freeze the message every recipient's copy comes from."""
    lifecycle.mark_approved(session, issue_id)
    rendered = freeze_issue(session, issue_id, settings)
    prepare_issue_message(session, issue_id, settings)
    variants = freeze_variants(session, issue_id, settings)
    warnings = {*rendered.warnings, *(w for v in variants for w in v.render_warnings)}
    mailing_list = lifecycle.get_issue(session, issue_id).mailing_list
    if not mailing_list.postal_address.strip():
        warnings.add(
            f"list {mailing_list.slug} has no postal address: bulk mail should show one "
            f"(CAN-SPAM; receivers notice); set it with `digest lists postal-address "
            f"{mailing_list.slug} ADDRESS`, the API or the editor"
        )
    return Approval(issue_id, tuple(sorted(warnings)), len(rendered.html.encode()), len(variants))


def start_sending(session: Session, issue_id: int) -> Handover:
    """Send an approved issue: snapshot its recipients (one delivery row per confirmed,
    unsuppressed subscriber) and open it to the senders.

    Only an approved issue is sent. One already sending or paused has its deliveries planned
    and a sender of its own: `resume_sending` restarts it. The issue's row is locked first, so
    two requests to send it plan once."""
    issue = lifecycle.get_issue(session, issue_id, for_update=True)
    if issue.status != IssueStatus.APPROVED:
        hint = "; resume restarts it" if issue.status in lifecycle.RESUMABLE else ""
        raise DigestError(
            f"issue {issue_id} is {issue.status}; only an approved issue is sent{hint}"
        )
    if issue.message_template is None:
        raise DeliveryError(f"issue {issue_id} was not rendered; approve it first")
    lifecycle.mark_sending(session, issue_id)
    return Handover(issue_id, plan_deliveries(session, issue_id))


def resume_sending(session: Session, issue_id: int) -> Handover:
    """Reopen a paused issue, or restart one whose sender stopped (a server or worker that
    went away mid-send): its remaining deliveries are sent, with its count of transport
    errors in a row cleared. Nothing is planned again: the recipients are those of the
    snapshot."""
    lifecycle.resume(session, issue_id)
    return Handover(issue_id, 0)


def send_to_the_rest(session: Session, issue_id: int) -> Handover:
    """Deliver a sent issue, the same frozen message, to its list's confirmed, unsuppressed
    subscribers who have no delivery of it: those who joined (or confirmed) after it went
    out. Planning adds only the rows missing (its unique key), so this is the one planning
    and sending path again, and running it twice plans nobody twice.

    A delivery that failed is not tried again here: a hard bounce suppressed its address, a
    block paused its domain, and a transient failure already had its attempts with back-off;
    its row and error stay the record of that send (the report lists them)."""
    lifecycle.reopen_sent(session, issue_id)
    planned = plan_deliveries(session, issue_id)
    if not planned:  # the caller rolls back: the issue stays sent
        raise DigestError(f"every confirmed subscriber has a delivery of issue {issue_id}")
    return Handover(issue_id, planned)


def approve_if_auto(session: Session, issue_id: int, settings: Settings) -> bool:
    """A draft of a list set to auto-approve goes out without an editor: approve it and hand
    it over (`approve_issue`, then `start_sending`; the caller dispatches after commit).
    False: it waits for its editor."""
    issue = lifecycle.get_issue(session, issue_id)
    if issue.status != IssueStatus.DRAFT or not issue.mailing_list.auto_approve:
        return False
    approve_issue(session, issue_id, settings)
    start_sending(session, issue_id)
    return True

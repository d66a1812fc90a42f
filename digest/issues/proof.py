"""Proof copies: an editor sends the issue as it stands (a draft too) to a few addresses.

A proof is built like a real copy but touches no ledger: its links carry subscription id 0,
which the web pages answer with "not found" rather than unsubscribing anyone.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from digest import installation
from digest.config import Settings
from digest.delivery.prepare import issue_template
from digest.delivery.recipient import Recipient
from digest.delivery.transports import Transport
from digest.errors import DigestError
from digest.issues.lifecycle import get_issue
from digest.issues.preview import render_preview
from digest.subscribers.addresses import normalise_email


@dataclass(frozen=True, slots=True)
class ProofResult:
    email: str
    outcome: str  # sent | retry | failed
    detail: str


def send_proof(
    session: Session,
    issue_id: int,
    addresses: list[str],
    transport: Transport,
    settings: Settings,
) -> list[ProofResult]:
    if not addresses:
        raise DigestError("give at least one address for the proof")
    if len(addresses) > 20:
        raise DigestError("a proof goes to 20 addresses at most")
    emails = [normalise_email(a) for a in addresses]
    issue = get_issue(session, issue_id)
    rendered = render_preview(session, issue_id, settings)
    template = issue_template(
        issue,
        rendered.html,
        rendered.text,
        rendered.slots,
        settings,
        subject_prefix="[Proof] ",
        message_id_part=installation.message_id_part(session),
    )
    # Negative ids keep proof Message-IDs apart from every real delivery's.
    batch = [Recipient(-(i + 1), 0, email, "") for i, email in enumerate(emails)]
    by_id = {r.delivery_id: r.email for r in batch}
    results: list[ProofResult] = []
    for chunk in transport.send(template.bounce_address, batch, template.personalise):
        results.extend(ProofResult(by_id[r.delivery_id], r.outcome, r.detail) for r in chunk)
    return results

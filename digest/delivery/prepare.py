"""Freeze an issue's message once, after render and before sending."""

from __future__ import annotations

from sqlalchemy.orm import Session

from digest import installation
from digest.config import Settings
from digest.delivery.errors import DeliveryError, LedgerError
from digest.delivery.message import MessageTemplate, build_template
from digest.keys import signing_keys
from digest.models import Issue
from digest.placeholders import Slots
from digest.render.allowlist import check_html
from digest.tokens import Signer


def prepare_issue_message(session: Session, issue_id: int, settings: Settings) -> None:
    """Build the issue's MIME message and store it as `issue.message_template`."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise LedgerError(f"issue {issue_id} does not exist")
    if issue.html is None or issue.text is None or issue.slot_marker is None:
        raise DeliveryError(f"issue {issue_id} is not rendered yet: render it before sending")
    slots = Slots(issue.slot_marker)
    # Checked when rendered; checked again on what is frozen for sending, whatever stored it.
    check_html(issue.html, f"issue {issue_id}", slots=slots)
    template = issue_template(
        issue,
        issue.html,
        issue.text,
        slots,
        settings,
        message_id_part=installation.message_id_part(session),
    )
    issue.message_template = template.to_bytes()


def issue_template(
    issue: Issue,
    html: str,
    text: str,
    slots: Slots,
    settings: Settings,
    *,
    subject_prefix: str = "",
    message_id_part: str = "",
    subject: str | None = None,
    variant_id: int | None = None,
) -> MessageTemplate:
    """The issue's message template with its list's sender identity (proofs use it too);
    a variant's (`variant_id`) links view-online to that variant."""
    s = settings
    mailing_list = issue.mailing_list
    return build_template(
        issue_id=issue.id,
        subject=subject_prefix + (issue.subject if subject is None else subject),
        html_body=html,
        text_body=text,
        slots=slots,
        list_slug=mailing_list.slug,
        list_name=mailing_list.name,
        from_name=mailing_list.from_name or s.from_name,
        from_email=mailing_list.from_email or s.from_email,
        reply_to=mailing_list.reply_to,
        public_url=s.public_url,
        unsubscribe_address=s.unsubscribe_mailbox,
        signer=Signer(signing_keys(s)),
        message_id_part=message_id_part,
        return_path_local=s.return_path_local,
        return_path_domain=s.return_path_domain,
        view_variant_id=variant_id,
    )

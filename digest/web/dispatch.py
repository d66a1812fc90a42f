"""Start or resume sending an issue from a request, without sending inside the request.

With a broker the Celery workers send (`workers.tasks.send_issue`, enqueued after the commit,
so they see the planned deliveries). Without one, this server process sends after the
response (a FastAPI background task with its own sessions): the embedded default. If the
process stops half-way the leased ledger loses nobody; `digest issues resume N` finishes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from fastapi import BackgroundTasks
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.errors import DigestError
from digest.issues import lifecycle
from digest.pipeline import start_sending

log = logging.getLogger(__name__)
Mode = Literal["workers", "in-process"]


@dataclass(frozen=True, slots=True)
class Dispatch:
    issue_id: int
    planned: int
    mode: Mode


def send_in_process(sf: sessionmaker[Session], issue_id: int, settings: Settings) -> None:
    """The background task: send every pending delivery in this process."""
    from digest.delivery.send import send_issue_inline
    from digest.delivery.transports import open_transport

    try:
        with open_transport(settings) as transport:
            totals = send_issue_inline(sf, issue_id, transport)
        log.info("issue %s: %s sent, %s failed in-process", issue_id, totals.sent, totals.failed)
    except Exception:
        log.exception("issue %s: in-process sending stopped; `digest issues resume`", issue_id)


def _hand_over(
    session: Session,
    issue_id: int,
    settings: Settings,
    background: BackgroundTasks,
    sf: sessionmaker[Session],
) -> Mode:
    # Whoever sends must see the planned rows and the status: commit before handing over.
    session.commit()
    if settings.broker_url:
        from workers.tasks import send_issue  # Celery only when a broker is configured

        send_issue.delay(issue_id)
        return "workers"
    background.add_task(send_in_process, sf, issue_id, settings)
    return "in-process"


def send(
    session: Session,
    issue_id: int,
    settings: Settings,
    background: BackgroundTasks,
    sf: sessionmaker[Session],
) -> Dispatch:
    """Plan an approved issue's deliveries and have them sent."""
    issue = lifecycle.get_issue(session, issue_id, for_update=True)
    if issue.status != "approved":
        # Sending and paused issues already have a sender; resume restarts a paused one.
        raise DigestError(f"issue {issue_id} is {issue.status}; only an approved issue is sent")
    planned = start_sending(session, issue_id)
    return Dispatch(issue_id, planned, _hand_over(session, issue_id, settings, background, sf))


def resume(
    session: Session,
    issue_id: int,
    settings: Settings,
    background: BackgroundTasks,
    sf: sessionmaker[Session],
) -> Dispatch:
    """Reopen a paused issue and have its remaining deliveries sent."""
    lifecycle.resume(session, issue_id)
    return Dispatch(issue_id, 0, _hand_over(session, issue_id, settings, background, sf))

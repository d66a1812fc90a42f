"""Have an issue sent from a request, without sending inside the request.

The rules (which issues may be sent or resumed, what planning does) are `digest.pipeline`'s;
this is the web's own I/O: commit, then hand the issue to whoever sends. With a broker the
Celery workers send (`workers.tasks.send_issue`, enqueued after the commit, so they see the
planned deliveries). Without one, this server process sends after the response (a FastAPI
background task with its own sessions): the embedded default. If the process stops half-way
the leased ledger loses nobody; `digest issues resume N` finishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import BackgroundTasks
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.pipeline import Handover, resume_sending, send_to_the_rest, start_sending

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
    from digest.delivery.transport_factory import open_transport

    try:
        with open_transport(settings) as transport:
            totals = send_issue_inline(sf, issue_id, transport, settings)
        log.info("issue %s: %s sent, %s failed in-process", issue_id, totals.sent, totals.failed)
    except Exception:
        log.exception("issue %s: in-process sending stopped; `digest issues resume`", issue_id)


def _dispatch(
    session: Session,
    action: Callable[[Session, int], Handover],
    issue_id: int,
    settings: Settings,
    background: BackgroundTasks,
    sf: sessionmaker[Session],
) -> Dispatch:
    handover = action(session, issue_id)
    # Whoever sends must see the planned rows and the status: commit before handing over.
    session.commit()
    if settings.broker_url:
        from workers.tasks import send_issue  # Celery only when a broker is configured

        send_issue.delay(issue_id)
        return Dispatch(issue_id, handover.planned, "workers")
    background.add_task(send_in_process, sf, issue_id, settings)
    return Dispatch(issue_id, handover.planned, "in-process")


def send(
    session: Session,
    issue_id: int,
    settings: Settings,
    background: BackgroundTasks,
    sf: sessionmaker[Session],
) -> Dispatch:
    """`pipeline.start_sending`, then have the issue sent."""
    return _dispatch(session, start_sending, issue_id, settings, background, sf)


def resume(
    session: Session,
    issue_id: int,
    settings: Settings,
    background: BackgroundTasks,
    sf: sessionmaker[Session],
) -> Dispatch:
    """`pipeline.resume_sending`, then have the issue's remaining deliveries sent."""
    return _dispatch(session, resume_sending, issue_id, settings, background, sf)


def send_rest(
    session: Session,
    issue_id: int,
    settings: Settings,
    background: BackgroundTasks,
    sf: sessionmaker[Session],
) -> Dispatch:
    """`pipeline.send_to_the_rest`, then have those deliveries sent."""
    return _dispatch(session, send_to_the_rest, issue_id, settings, background, sf)

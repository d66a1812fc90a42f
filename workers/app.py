# Celery and kombu ship no type hints.
# mypy: disallow-untyped-calls=False
"""The Celery app: JSON only, late acks, one message prefetched, collect and send queues apart.

Tasks are thin (ids in, ids out); the work is in `digest`. Sending is never starved by a slow
feed: collection has its own queue.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, bootsteps, signals
from kombu.entity import Queue

from digest.config import get_settings
from digest.keys import public_url_warning, signing_keys
from digest.live_metrics import QUEUES
from digest.logs import configure_logging

settings = get_settings()

app = Celery("digest", broker=settings.broker_url, include=["workers.tasks"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_ignore_result=True,
    task_acks_late=True,
    # A task lost with its worker (kill -9) goes back to the queue instead of vanishing.
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="default",
    task_queues=tuple(Queue(name) for name in QUEUES),
    task_routes={
        "workers.tasks.collect_source": {"queue": "collect"},
        "workers.tasks.collect_sources": {"queue": "collect"},
        "workers.tasks.collect_due_sources": {"queue": "collect"},
        "workers.tasks.collect_scheduled_issue": {"queue": "collect"},
        "workers.tasks.send_issue": {"queue": "send"},
        "workers.tasks.send_batch": {"queue": "send"},
    },
    broker_connection_retry_on_startup=True,
    # A lost broker connection must not abort batches in progress: their results reach the
    # ledger in PostgreSQL, and the chasers are re-kicked when the connection is back.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    # Redis re-delivers an unacked task after this long; longer than any batch takes.
    broker_transport_options={"visibility_timeout": 3600},
    timezone="UTC",
    beat_schedule={
        "collect-due-sources": {"task": "workers.tasks.collect_due_sources", "schedule": 300.0},
        "compose-due-lists": {"task": "workers.tasks.compose_due_lists", "schedule": 60.0},
        "send-due-issues": {"task": "workers.tasks.send_due_issues", "schedule": 30.0},
        "resume-stalled-sends": {"task": "workers.tasks.kick_sending_issues", "schedule": 60.0},
        "send-open-confirmations": {"task": "workers.tasks.send_confirmations", "schedule": 60.0},
        "prune-retention": {"task": "workers.tasks.prune_retention", "schedule": 86400.0},
    },
)


class KickOnConnect(bootsteps.StartStopStep):  # type: ignore[misc]
    """Each time a worker's consumer (re)connects to the broker, kick the issues still sending:
    their free chaser slots get a chaser (see workers/chasers.py; never more than
    `send_fanout` per issue, however many workers connect).

    Batch chasers live only in the broker: a restarted Redis (nothing kept on disk) loses them
    with their slots, so the kick refills them at once instead of at the next beat tick. Those
    held unacked by a worker killed with -9 come back only after the visibility timeout, and
    their slots stay held until they run out: the kick looks again once they have (a
    follow-up), so a worker started after another died takes the issue on within seconds.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Any) -> None:
        parent.app.send_task("workers.tasks.kick_sending_issues", kwargs={"follow_up": True})


app.steps["consumer"].add(KickOnConnect)

if settings.log_format == "json":

    @signals.setup_logging.connect  # type: ignore[untyped-decorator]
    def json_logging(loglevel: Any = None, **_: Any) -> None:
        """One JSON object per line, Celery's own lines included (connecting this signal
        keeps Celery from installing its text handlers)."""
        configure_logging("json", loglevel or logging.INFO)


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def refuse_unsafe_keys(**_: Any) -> None:
    """However the worker is started (`digest worker` checks first), it signs no link with a
    missing or published key: InsecureKey stops it before it takes a task."""
    settings = get_settings()
    signing_keys(settings)
    if warning := public_url_warning(settings):
        logging.getLogger(__name__).warning("%s", warning)

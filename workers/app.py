"""The Celery app: JSON only, late acks, one message prefetched, collect and send queues apart.

Tasks are thin (ids in, ids out); the work is in `digest`. Sending is never starved by a slow
feed: collection has its own queue.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from digest.config import get_settings

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
    task_queues=(Queue("default"), Queue("collect"), Queue("send")),
    task_routes={
        "workers.tasks.collect_source": {"queue": "collect"},
        "workers.tasks.collect_due_sources": {"queue": "collect"},
        "workers.tasks.send_issue": {"queue": "send"},
        "workers.tasks.send_batch": {"queue": "send"},
    },
    broker_connection_retry_on_startup=True,
    # Redis re-delivers an unacked task after this long; longer than any batch takes.
    broker_transport_options={"visibility_timeout": 3600},
    timezone="UTC",
    beat_schedule={
        "collect-due-sources": {"task": "workers.tasks.collect_due_sources", "schedule": 300.0},
        "compose-due-lists": {"task": "workers.tasks.compose_due_lists", "schedule": 60.0},
        "resume-stalled-sends": {"task": "workers.tasks.kick_sending_issues", "schedule": 60.0},
    },
)

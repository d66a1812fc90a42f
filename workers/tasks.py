# Celery ships no type hints: its decorators would make every task "untyped".
# mypy: disallow-untyped-decorators=False
"""Thin Celery tasks: ids in, ids out. Follow-up work is enqueued only after a commit."""

from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import asdict
from datetime import datetime
from typing import Any

from celery.signals import worker_process_shutdown, worker_shutting_down
from kombu.exceptions import OperationalError as BrokerError

from digest.config import get_settings
from digest.db import session_factory, session_scope
from digest.delivery.confirmations import send_confirmations as send_confirmation_mails
from digest.delivery.ledger import finish_issue_if_done, next_attempt_at
from digest.delivery.send import BatchResult, new_owner, run_seconds
from digest.delivery.send import send_batch as send_one_batch
from digest.delivery.transport_factory import make_transport
from digest.delivery.transports import Transport
from digest.issues.lifecycle import get_issue, issue_ids_with_status, issue_status
from digest.issues.schedule import last_fire, record_due_fires, record_fire
from digest.models import IssueStatus, MailingList, utcnow
from digest.pipeline import start_sending
from digest.retention import prune
from digest.scheduled import (
    Claim,
    claim_scheduled,
    collect_step,
    compose_step,
    start_due_sends,
)
from digest.sources.collect import collect_sources as collect_batch
from digest.sources.due import due_source_ids
from digest.sources.store import TitleIndex
from workers.app import app
from workers.chasers import Chaser, chaser_slots

log = logging.getLogger(__name__)
_transport: dict[int, Transport] = {}
MIN_CHASE_SECONDS = 0.2
MAX_CHASE_SECONDS = 30.0
FOLLOW_UP_SECONDS = 0.5  # after the slots held at a worker's connect would run out
# Set in the worker's main process when its warm shutdown starts (SIGTERM: a deploy, `docker
# stop`); made before the pool forks, so its processes see it: a run of batches then ends with
# the batch on the wire instead of claiming more while the worker waits for it.
_SHUTTING_DOWN = multiprocessing.Event()


@worker_shutting_down.connect
def _end_runs(**_: Any) -> None:
    _SHUTTING_DOWN.set()


def transport() -> Transport:
    """One transport per worker process, so SMTP connections are reused across batches."""
    pid = os.getpid()
    if pid not in _transport:
        _transport[pid] = make_transport(get_settings())
    return _transport[pid]


@worker_process_shutdown.connect
def close_transport(**_: Any) -> None:
    """A pool process that stops (SIGTERM's warm shutdown) says QUIT on its SMTP sessions."""
    kept = _transport.pop(os.getpid(), None)
    if kept is not None:
        try:
            kept.close()
        except Exception:  # the process is going anyway; a hung relay must not keep it
            log.warning("closing the transport failed", exc_info=True)


def _database() -> str:
    return get_settings().database_url


@app.task(name="workers.tasks.collect_due_sources")
def collect_due_sources() -> list[int]:
    """Beat, every 5 minutes: the due sources, in batches of `collect_batch_size` (each task
    reads the recent titles once for its batch, and fetches its sources at once)."""
    size = get_settings().collect_batch_size
    with session_scope(_database()) as session:
        ids = due_source_ids(session)
    for start in range(0, len(ids), size):
        batch = ids[start : start + size]
        try:
            collect_sources.delay(batch)
        except BrokerError as exc:  # still due: the next tick enqueues them again
            log.warning("sources %s..%s not enqueued (%s)", batch[0], batch[-1], exc)
            break
    return ids


@app.task(name="workers.tasks.collect_sources")
def collect_sources(source_ids: list[int]) -> dict[str, Any]:
    """Collect a batch as `digest collect` does: fetched at once with no transaction open,
    under per-host limits shared with every worker through Redis, then each source stored
    in a short transaction of its own."""
    titles = TitleIndex(utcnow())
    settings = get_settings()
    sf = session_factory(settings.database_url)
    results = collect_batch(sf, source_ids, settings=settings, titles=titles)
    return {
        "sources": len(results),
        "new": sum(r.new for r in results),
        "errors": sum(1 for r in results if r.error),
        "title_reads": titles.loads,
    }


@app.task(name="workers.tasks.collect_source")
def collect_source(source_id: int) -> dict[str, Any]:
    """One source (enqueued by an earlier version): a batch of one."""
    counts: dict[str, Any] = collect_sources([source_id])
    return counts


@app.task(name="workers.tasks.send_confirmations")
def send_confirmations(request_ids: list[int] | None = None) -> dict[str, int]:
    """Sign-up confirmations: the ids a web request recorded, or (None, the periodic sweep)
    every request still open, so one whose enqueue was lost or whose send must be retried
    is not forgotten."""
    settings = get_settings()
    sf = session_factory(settings.database_url)
    totals = send_confirmation_mails(sf, transport(), settings, request_ids)
    return dict(totals)


@app.task(name="workers.tasks.compose_due_lists")
def compose_due_lists() -> list[int]:
    """Beat, every minute: record each list's new fire (with its checkpoint), then claim the
    scheduled issues to try now (new ones, failed ones due again, lost ones) and start each:
    its list's sources are collected, then it is composed up to its fire time."""
    settings = get_settings()
    with session_scope(_database()) as session:
        record_due_fires(session)
    with session_scope(_database()) as session:
        claims = claim_scheduled(session, utcnow(), settings.schedule_lease_seconds)
    for claim in claims:
        _follow(collect_scheduled_issue, claim)
    return [claim.id for claim in claims]


def _follow(task: Any, claim: Claim) -> None:
    """Enqueue the claim's next step; without the broker, its lease runs out and the next
    tick claims it again."""
    try:
        task.delay(claim.id, claim.token)
    except BrokerError as exc:
        log.warning("scheduled issue %s: next step not enqueued (%s)", claim.id, exc)


@app.task(name="workers.tasks.send_due_issues")
def send_due_issues() -> list[int]:
    """Beat, every minute: approved issues whose scheduled send has come are handed to the
    senders (planned by `digest.pipeline.start_sending`), then their chasers started."""
    with session_scope(_database()) as session:
        ids = [h.issue_id for h in start_due_sends(session)]
    for issue_id in ids:
        send_issue.delay(issue_id)
    return ids


@app.task(name="workers.tasks.collect_scheduled_issue")
def collect_scheduled_issue(scheduled_id: int, token: str) -> str:
    """A scheduled issue's first step: its list's sources brought up to date; then compose."""
    claim = Claim(scheduled_id, token)
    settings = get_settings()
    outcome = collect_step(session_factory(settings.database_url), claim, settings)
    if outcome.state == "collected":
        _follow(compose_scheduled_issue, claim)
    return outcome.state


@app.task(name="workers.tasks.compose_scheduled_issue")
def compose_scheduled_issue(scheduled_id: int, token: str) -> int | None:
    """Compose the scheduled issue up to its fire time; a list set to auto-approve sends it."""
    settings = get_settings()
    sf = session_factory(settings.database_url)
    outcome = compose_step(sf, Claim(scheduled_id, token), settings)
    if outcome.approved and outcome.issue_id is not None:
        send_issue.delay(outcome.issue_id)
    return outcome.issue_id


@app.task(name="workers.tasks.compose_list")
def compose_list(list_id: int) -> None:
    """Enqueued by an earlier version after it had moved the list's checkpoint: record the
    list's latest fire, so the next tick composes it rather than the fire being lost."""
    with session_scope(_database()) as session:
        lst = session.get(MailingList, list_id)
        if lst is not None:
            now = utcnow()
            record_fire(session, lst.id, last_fire(lst.schedule_cron, lst.timezone, now), now)


@app.task(name="workers.tasks.send_issue")
def send_issue(issue_id: int) -> int:
    """Start batch chasers in the free slots of an issue handed to the senders (`send_fanout`
    slots per issue: a chaser already running keeps its own). An approved one is handed over
    first, by the one rule every path uses (`digest.pipeline.start_sending`)."""
    with session_scope(_database()) as session:
        issue = get_issue(session, issue_id)
        if issue.status == IssueStatus.APPROVED:
            start_sending(session, issue_id)
        elif issue.status != IssueStatus.SENDING:
            return 0
    return start_chasers(issue_id)


def start_chasers(issue_id: int) -> int:
    """Enqueue a chaser in each free slot of the issue; returns how many."""
    chasers = chaser_slots().start(issue_id)
    for chaser in chasers:
        _enqueue(chaser, None)
    return len(chasers)


@app.task(name="workers.tasks.send_batch")
def send_batch(issue_id: int, slot: int | None = None, token: str | None = None) -> dict[str, int]:
    """Claim and send a run of batches, then chase the next; the last one closes the issue.
    With nothing claimable now but rows still open, come back when they can be.
    A chaser whose slot another one holds now (it was replaced) ends at once."""
    settings = get_settings()
    slots = chaser_slots()
    if slot is None or token is None:
        # Enqueued without a slot (by an earlier version): it takes a free one, if any.
        free = slots.start(issue_id, limit=1)
        if not free:
            return asdict(BatchResult())
        chaser = free[0]
    else:
        chaser = Chaser(issue_id, slot, token)
    if not slots.keep(chaser):
        return asdict(BatchResult())

    def heartbeat() -> None:
        slots.keep(chaser)

    sf = session_factory(settings.database_url)
    result = send_one_batch(
        sf,
        issue_id,
        new_owner(),
        transport(),
        settings,
        on_renew=heartbeat,
        refill_for=run_seconds(settings),
        stopping=_SHUTTING_DOWN.is_set,
    )
    if result.claimed:
        chase(chaser)
        return asdict(result)
    with session_scope(settings.database_url) as session:
        done = finish_issue_if_done(session, issue_id)
        # Not done while sending: some rows are still open (retries waiting, or leased).
        sending = not done and get_issue(session, issue_id).status == IssueStatus.SENDING
        due = next_attempt_at(session, issue_id) if sending else None
    if sending:
        chase(chaser, chase_delay(due, settings.lease_seconds))
    else:
        end_chaser(chaser)
    return asdict(result)


def _enqueue(chaser: Chaser, countdown: float | None) -> None:
    try:
        send_batch.apply_async((chaser.issue_id, chaser.slot, chaser.token), countdown=countdown)
    except BrokerError as exc:
        log.warning(
            "issue %s: chaser not enqueued (%s); the next kick restores it", chaser.issue_id, exc
        )
        chaser_slots().release(chaser)


def chase(chaser: Chaser, countdown: float | None = None) -> None:
    """Enqueue the chaser's next run, keeping its slot until then. A chaser replaced in its
    slot ends here. With the broker gone the chaser is lost, which is no failure of this
    batch (its results are in the ledger): a worker re-kicks sending issues when it
    reconnects, and beat does every minute."""
    if chaser_slots().keep(chaser, countdown or 0.0):
        _enqueue(chaser, countdown)


def end_chaser(chaser: Chaser) -> None:
    """The issue is done, paused or cancelled: free the slot. An issue resumed meanwhile
    (its kick found this slot still held) is chased on by this chaser."""
    chaser_slots().release(chaser)
    with session_scope(_database()) as session:
        status = issue_status(session, chaser.issue_id)
    if status == IssueStatus.SENDING:
        chase(chaser)


def chase_delay(due: datetime | None, lease_seconds: float) -> float:
    """Seconds until a chaser that found nothing should look again: when the earliest retry
    (or deferred row) is due; with only leased rows left, half a lease, so a dead worker's
    rows are reclaimed soon after their lease runs out. Never busy, never over 30 s."""
    wait = (due - utcnow()).total_seconds() if due is not None else lease_seconds / 2
    return min(max(wait, MIN_CHASE_SECONDS), MAX_CHASE_SECONDS)


@app.task(name="workers.tasks.kick_sending_issues")
def kick_sending_issues(follow_up: bool = False) -> list[int]:
    """Safety net (beat, every minute; a worker when it connects): each issue still sending
    gets a chaser in every free slot, whatever tasks were lost. A slot held by a live chaser
    stays as it is, so kicks never add up.

    With `follow_up`, kick once more when the slots held now have run out, if they are not
    kept: a worker that starts after another died (kill -9) finds the dead one's slots still
    held, and would otherwise wait for beat to fill them."""
    with session_scope(_database()) as session:
        ids = issue_ids_with_status(session, IssueStatus.SENDING)
    held = 0.0
    for issue_id in ids:
        if follow_up:
            held = max([held, *chaser_slots().seconds_left(issue_id)])
        start_chasers(issue_id)
    if held:
        try:
            kick_sending_issues.apply_async(countdown=held + FOLLOW_UP_SECONDS)
        except BrokerError as exc:
            log.warning("follow-up kick not enqueued (%s)", exc)
    return ids


@app.task(name="workers.tasks.prune_retention")
def prune_retention() -> dict[str, int]:
    """Beat, daily: old delivery rows and issue events become per-issue totals (the same
    function as `digest retention`)."""
    settings = get_settings()
    if not settings.retention_months:
        return {}
    done = prune(
        session_factory(settings.database_url),
        months=settings.retention_months,
        chunk=settings.retention_chunk,
    )
    return {"issues": done.issues, "deliveries": done.deliveries, "events": done.events}

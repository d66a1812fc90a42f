"""`digest run`: what beat does, once, in this process (no broker: embedded defaults, e.g.
from cron): the issues whose scheduled send has come, each list's due issue (its sources
collected, then composed up to its scheduled time; sent when the list auto-approves), then
every other due source. With a broker it hands the same ticks to the workers."""

from __future__ import annotations

from datetime import datetime

from digest.cli.common import console, err, unit_of_work
from digest.cli.sending import send_inline
from digest.config import Settings, get_settings
from digest.db import session_factory
from digest.issues.schedule import record_due_fires
from digest.models import MailingList, ScheduledIssue, utcnow
from digest.scheduled import claim_scheduled, run_scheduled, start_due_sends
from digest.sources.collect import collect_due


def run_once() -> None:
    settings = get_settings()
    if settings.broker_url:
        from workers.tasks import collect_due_sources, compose_due_lists, send_due_issues

        compose_due_lists.delay()
        collect_due_sources.delay()
        send_due_issues.delay()
        console.print(
            "handed to the workers: the lists' due issues, the scheduled sends, the due sources"
        )
        return
    send_due(settings)
    with unit_of_work(settings) as session:
        record_due_fires(session)
    with unit_of_work(settings) as session:
        claims = claim_scheduled(session, utcnow(), settings.schedule_lease_seconds)
    factory = session_factory(settings.database_url)
    for claim in claims:
        outcome = run_scheduled(factory, claim, settings)
        with unit_of_work(settings) as session:
            record = session.get_one(ScheduledIssue, claim.id)
            lst = session.get_one(MailingList, record.list_id)
            label = f"{lst.slug} (due {record.fire_at:%Y-%m-%d %H:%M} UTC)"
        if outcome.state == "failed":
            err.print(f"{label}: {outcome.error}; tried again later", markup=False)
        elif outcome.state == "empty":
            console.print(f"{label}: nothing new, no issue", markup=False)
        elif outcome.state == "composed":
            console.print(f"{label}: composed issue {outcome.issue_id}", markup=False)
        if outcome.approved and outcome.issue_id is not None:
            send_inline(outcome.issue_id, settings)
    results = collect_due(factory, settings=settings)
    new = sum(r.new for r in results)
    failed = sum(1 for r in results if r.error)
    console.print(f"collected {len(results)} due sources: {new} new items, {failed} failed")


def send_due(settings: Settings, now: datetime | None = None) -> list[int]:
    """Approved issues whose scheduled send has come: handed over, committed, then sent here.
    `now` stands in for the clock (tests)."""
    with unit_of_work(settings) as session:
        handovers = start_due_sends(session, now)
    for handover in handovers:
        console.print(
            f"issue {handover.issue_id}: scheduled send, {handover.planned} recipients planned"
        )
        send_inline(handover.issue_id, settings)
    return [h.issue_id for h in handovers]

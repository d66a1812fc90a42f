"""Sending from the CLI: in-process on embedded defaults, or on Celery workers with a broker."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from digest.cli.common import console, err, unit_of_work
from digest.config import get_settings
from digest.db import session_factory
from digest.delivery.ledger import issue_progress
from digest.issues.lifecycle import get_issue


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


def send_inline(issue_id: int) -> dict[str, int]:
    """Send every pending delivery of the issue in this process, with a progress bar."""
    from digest.delivery.send import BatchResult, send_issue_inline
    from digest.delivery.transports import open_transport

    started = time.perf_counter()
    with unit_of_work() as session:
        total = issue_progress(session, issue_id)["total"]
    with progress_bar() as bar:
        task = bar.add_task(f"sending issue {issue_id}", total=total)

        def on_progress(totals: BatchResult) -> None:
            bar.update(task, completed=totals.sent + totals.failed)

        with open_transport(get_settings()) as transport:
            send_issue_inline(session_factory(), issue_id, transport, on_progress=on_progress)
    with unit_of_work() as session:
        counts = issue_progress(session, issue_id)
        state = get_issue(session, issue_id).status
    seconds = time.perf_counter() - started
    console.print(
        f"issue {issue_id} [{state}]: {describe(counts)}" + f" in {seconds:.1f} s",
        markup=False,
    )
    return counts


def deliver(issue_id: int, *, wait: bool = False) -> None:
    """Send the issue's planned deliveries: on the workers with a broker, else in-process."""
    if get_settings().broker_url:
        send_on_workers(issue_id, wait=wait)
    else:
        send_inline(issue_id)


def send_on_workers(issue_id: int, *, wait: bool) -> None:
    """Hand the issue to the Celery workers (the deliveries are already planned and committed)."""
    from workers.tasks import send_issue

    send_issue.delay(issue_id)
    console.print(f"issue {issue_id} queued for the workers")
    if wait:
        counts = wait_until_done(issue_id)
        console.print(f"issue {issue_id}: {describe(counts)}", markup=False)


def wait_until_done(issue_id: int, poll: float = 0.5) -> dict[str, int]:
    with progress_bar() as bar:
        task = bar.add_task(f"sending issue {issue_id}", total=None)
        while True:
            with unit_of_work() as session:
                state = get_issue(session, issue_id).status
                counts = issue_progress(session, issue_id)
            done = counts.get("sent", 0) + counts.get("failed", 0) + counts.get("skipped", 0)
            bar.update(task, total=counts["total"], completed=done)
            if state in ("sent", "cancelled", "paused"):
                return counts
            time.sleep(poll)


def describe(counts: dict[str, int]) -> str:
    """'990 of 1000 sent, 2 failed, 8 skipped' from the ledger's counts (skipped: no longer
    confirmed or suppressed when their turn came)."""
    parts = [f"{counts.get('sent', 0)} of {counts.get('total', 0)} sent"]
    keys = ("pending", "sending", "failed", "skipped")
    parts += [f"{counts[k]} {k}" for k in keys if counts.get(k)]
    return ", ".join(parts)

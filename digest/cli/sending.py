"""Sending from the CLI: in-process on embedded defaults, or on Celery workers with a broker.

The rules are `digest.pipeline`'s (the commands call it first, in their own transaction);
this is the CLI's I/O: who sends, and a progress bar from the ledger's one count.
"""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from digest.cli.common import console, err, unit_of_work
from digest.config import Settings
from digest.db import session_factory
from digest.delivery import ledger
from digest.issues.lifecycle import get_issue
from digest.models import IssueStatus

# An issue in one of these has nothing more sent until someone acts.
AT_REST = (IssueStatus.SENT, IssueStatus.CANCELLED, IssueStatus.PAUSED)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


def _state(settings: Settings, issue_id: int) -> tuple[IssueStatus, ledger.Progress]:
    with unit_of_work(settings) as session:
        return get_issue(session, issue_id).status, ledger.issue_progress(session, issue_id)


def send_inline(issue_id: int, settings: Settings) -> ledger.Progress:
    """Send every pending delivery of the issue in this process, with a progress bar."""
    from digest.delivery.send import BatchResult, send_issue_inline
    from digest.delivery.transport_factory import open_transport

    started = time.perf_counter()
    _, counts = _state(settings, issue_id)
    with progress_bar() as bar:
        task = bar.add_task(f"sending issue {issue_id}", total=counts.total)

        def on_progress(_: BatchResult) -> None:
            bar.update(task, completed=_state(settings, issue_id)[1].settled)

        with open_transport(settings) as transport:
            sf = session_factory(settings.database_url)
            send_issue_inline(sf, issue_id, transport, settings, on_progress=on_progress)
    state, counts = _state(settings, issue_id)
    seconds = time.perf_counter() - started
    console.print(
        f"issue {issue_id} [{state}]: {describe(counts)} in {seconds:.1f} s", markup=False
    )
    return counts


def deliver(issue_id: int, settings: Settings, *, wait: bool = False) -> None:
    """Have an issue handed to the senders (`digest.pipeline`, committed) sent: on the
    workers with a broker, else in-process."""
    if settings.broker_url:
        send_on_workers(issue_id, settings, wait=wait)
    else:
        send_inline(issue_id, settings)


def send_on_workers(issue_id: int, settings: Settings, *, wait: bool) -> None:
    """Hand the issue to the Celery workers (the deliveries are already planned and committed)."""
    from workers.tasks import send_issue

    send_issue.delay(issue_id)
    console.print(f"issue {issue_id} queued for the workers")
    if wait:
        counts = wait_until_done(issue_id, settings)
        console.print(f"issue {issue_id}: {describe(counts)}", markup=False)


def wait_until_done(issue_id: int, settings: Settings, poll: float = 0.5) -> ledger.Progress:
    with progress_bar() as bar:
        task = bar.add_task(f"sending issue {issue_id}", total=None)
        while True:
            state, counts = _state(settings, issue_id)
            bar.update(task, total=counts.total, completed=counts.settled)
            if state in AT_REST:
                return counts
            time.sleep(poll)


def describe(counts: ledger.Progress) -> str:
    """'990 of 1000 sent, 2 failed, 8 skipped' from the ledger's counts (skipped: no longer
    confirmed or suppressed when their turn came)."""
    parts = [f"{counts.sent} of {counts.total} sent"]
    others = {
        "pending": counts.pending,
        "sending": counts.sending,
        "failed": counts.failed,
        "skipped": counts.skipped,
    }
    parts += [f"{n} {name}" for name, n in others.items() if n]
    return ", ".join(parts)

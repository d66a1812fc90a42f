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
    from digest.delivery.send import send_issue_inline
    from digest.delivery.transports import make_transport

    settings = get_settings()
    transport = make_transport(settings)
    started = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task(f"sending issue {issue_id}", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        send_issue_inline(session_factory(), issue_id, transport, on_progress=on_progress)
    with unit_of_work() as session:
        counts = issue_progress(session, issue_id)
        state = get_issue(session, issue_id).status
    seconds = time.perf_counter() - started
    console.print(
        f"issue {issue_id} [{state}]: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
        + f" in {seconds:.1f} s",
        markup=False,
    )
    return counts


def send_on_workers(issue_id: int, *, wait: bool) -> None:
    """Hand the issue to the Celery workers (the deliveries are already planned and committed)."""
    from workers.tasks import send_issue

    send_issue.delay(issue_id)
    console.print(f"issue {issue_id} queued for the workers")
    if wait:
        counts = wait_until_done(issue_id)
        console.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v))


def wait_until_done(issue_id: int, poll: float = 0.5) -> dict[str, int]:
    with progress_bar() as bar:
        task = bar.add_task(f"sending issue {issue_id}", total=None)
        while True:
            with unit_of_work() as session:
                state = get_issue(session, issue_id).status
                counts = issue_progress(session, issue_id)
            done = counts.get("sent", 0) + counts.get("failed", 0)
            bar.update(task, total=sum(counts.values()), completed=done)
            if state in ("sent", "cancelled", "paused"):
                return counts
            time.sleep(poll)

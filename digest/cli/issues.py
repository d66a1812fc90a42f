"""`digest issues`: compose, edit, preview, approve, send, and follow an issue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from digest import overview
from digest.cli.common import UsageProblem, console, err, require_signing_key, unit_of_work
from digest.cli.sending import deliver, describe
from digest.config import get_settings
from digest.delivery.ledger import issue_progress, waves_to_come
from digest.delivery.report import KINDS, Kind, issue_report, report_page
from digest.issues import items as issue_items
from digest.issues import lifecycle
from digest.issues.compose import compose_issue
from digest.issues.preview import (
    personalise_for_preview,
    render_preview,
    render_variant_preview,
)
from digest.issues.schedule import in_zone, parse_local_time, schedule_send, unschedule_send
from digest.issues.variants import variant_summaries
from digest.models import IssueStatus
from digest.overview import overdue_rows
from digest.pipeline import approve_issue, resume_sending, send_to_the_rest, start_sending
from digest.subscribers.lists import get_list

app = typer.Typer(help="Compose, review, approve and send issues.", no_args_is_help=True)


@app.command("compose")
def compose(list_slug: Annotated[str, typer.Argument(help="The list's slug.")]) -> None:
    """Create the next draft issue from what is new since the previous one."""
    with unit_of_work() as session:
        issue = compose_issue(session, list_slug)
        if issue is None:
            console.print(f"nothing new for {list_slug} since its last issue: no issue created")
            return
        console.print(
            f"composed issue {issue.id} (#{issue.number} of {list_slug}) with "
            f"{len(issue.issue_items)} items: {issue.subject}",
            markup=False,
        )
        for note in issue.compose_notes:
            err.print(f"note: {note}", markup=False)


@app.command("show")
def show(issue_id: int) -> None:
    """Show an issue: status, subject and its items in order."""
    with unit_of_work() as session:
        issue = lifecycle.get_issue(session, issue_id)
        console.print(
            f"issue {issue.id} #{issue.number} [{issue.status}] {issue.subject}", markup=False
        )
        if issue.status == IssueStatus.APPROVED and issue.send_at:
            tz = issue.mailing_list.timezone
            console.print(
                f"scheduled: {in_zone(issue.send_at, tz)} ({tz}), "
                f"{issue.send_at:%Y-%m-%d %H:%M} UTC",
                markup=False,
            )
        if issue.preheader:
            console.print(f"preheader: {issue.preheader}", markup=False)
        if issue.intro:
            console.print(f"intro: {issue.intro}", markup=False)
        table = Table("pos", "item", "group", "published", "title")
        for row in overview.issue_items(session, issue_id):
            published = row.published_at
            table.add_row(
                str(row.position),
                str(row.item_id),
                Text(row.group),  # Text, not markup: titles come from the sources
                published.date().isoformat() if published else "-",
                Text(row.title),
            )
        console.print(table)
        for warning in issue.render_warnings or []:
            err.print(f"warning: {warning}", markup=False)


@app.command("list")
def list_issues(
    list_slug: Annotated[str | None, typer.Option("--list", "-l")] = None,
    status: Annotated[IssueStatus | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """Show issues, newest first."""
    with unit_of_work() as session:
        list_id = get_list(session, list_slug).id if list_slug else None
        rows = overview.issue_rows(session, list_id=list_id, status=status, limit=limit)
    table = Table("id", "list", "#", "status", "items", "subject")
    for row in rows:
        table.add_row(
            str(row.id),
            row.list_slug,
            str(row.number),
            row.status,
            str(row.items),
            Text(row.subject),
        )
    console.print(table)


@app.command("preview")
def preview(
    issue_id: int,
    fmt: Annotated[str, typer.Option("--format", help="html or text.")] = "html",
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
    variant: Annotated[
        int | None, typer.Option(help="A variant of an approved issue (`issues variants`).")
    ] = None,
) -> None:
    """Write what a subscriber sees (with a sample recipient's name and links)."""
    if fmt not in ("html", "text"):
        raise UsageProblem("--format must be html or text")
    settings = get_settings()
    with unit_of_work(settings) as session:
        if variant is None:
            rendered = render_preview(session, issue_id, settings)
        else:
            rendered = render_variant_preview(session, issue_id, variant)
    body = personalise_for_preview(
        rendered.html if fmt == "html" else rendered.text, rendered.slots
    )
    for warning in rendered.warnings:
        err.print(f"warning: {warning}", markup=False)
    if out is None:
        typer.echo(body)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    err.print(f"wrote {fmt} preview of issue {issue_id} to {out} ({len(body.encode())} bytes)")


@app.command("test-send")
def test_send(
    issue_id: int,
    to: Annotated[list[str], typer.Option("--to", help="An address; repeat for more.")],
) -> None:
    """Send a proof copy of the issue as it stands (drafts too) to a few addresses."""
    from digest.delivery.transport_factory import open_transport
    from digest.issues.proof import send_proof

    settings = get_settings()
    require_signing_key(settings)
    with open_transport(settings) as transport, unit_of_work(settings) as session:
        results = send_proof(session, issue_id, to, transport, settings)
    for r in results:
        console.print(f"{r.email}: {r.outcome} {r.detail}".rstrip(), markup=False)
    if any(r.outcome != "sent" for r in results):
        raise typer.Exit(1)


@app.command("drop")
def drop(issue_id: int, item_id: int) -> None:
    """Take an item out of a draft (it stays free for a later issue)."""
    with unit_of_work() as session:
        lifecycle.drop_item(session, issue_id, item_id)
    console.print(f"dropped item {item_id} from issue {issue_id}")


@app.command("move")
def move(issue_id: int, item_id: int, position: int) -> None:
    """Move an item of a draft to a 0-based position."""
    with unit_of_work() as session:
        lifecycle.move_item(session, issue_id, item_id, position)
    console.print(f"moved item {item_id} to position {position}")


@app.command("edit")
def edit(
    issue_id: int,
    intro: Annotated[
        str | None, typer.Option(help="Intro, in Markdown (blank line = new paragraph).")
    ] = None,
    subject: str | None = None,
    preheader: str | None = None,
) -> None:
    """Set a draft's intro, subject or preheader."""
    with unit_of_work() as session:
        issue = lifecycle.edit_draft(
            session, issue_id, intro=intro, subject=subject, preheader=preheader
        )
        console.print(f"issue {issue.id}: {issue.subject}", markup=False)


@app.command("discard")
def discard(issue_id: int) -> None:
    """Delete a draft; its items go back to the pool for the next issue."""
    with unit_of_work() as session:
        lifecycle.discard_draft(session, issue_id)
    console.print(f"discarded draft {issue_id}")


@app.command("approve")
def approve(issue_id: int) -> None:
    """Approve a draft: it is rendered once and frozen for sending."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        result = approve_issue(session, issue_id, settings)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    console.print(f"approved issue {issue_id} ({result.html_bytes / 1024:.1f} KB of HTML)")


@app.command("send")
def send(
    issue_id: int,
    wait: Annotated[bool, typer.Option(help="With workers: wait until it is sent.")] = False,
) -> None:
    """Send an approved issue to every confirmed subscriber of its list."""
    settings = get_settings()
    require_signing_key(settings)  # before planning: nothing is queued with a key that cannot sign
    with unit_of_work(settings) as session:
        handover = start_sending(session, issue_id)
    console.print(f"issue {issue_id}: {handover.planned} recipients planned")
    deliver(issue_id, settings, wait=wait)


@app.command("status")
def status(issue_id: int) -> None:
    """Show an issue's delivery counts."""
    with unit_of_work() as session:
        issue = lifecycle.get_issue(session, issue_id)
        counts = issue_progress(session, issue_id)
        waves = waves_to_come(session, issue_id)
    console.print(f"issue {issue_id} [{issue.status}]: {describe(counts)}", markup=False)
    for wave in waves:
        console.print(
            f"  wave at {wave.due_at:%Y-%m-%d %H:%M} UTC: {wave.deliveries} to send",
            markup=False,
        )


@app.command("variants")
def variants(issue_id: int) -> None:
    """Show an approved issue's variants: each (edition, topic set) rendered, its readers."""
    with unit_of_work() as session:
        rows = variant_summaries(session, issue_id)
    table = Table("variant", "language", "topics", "readers", "items", "subject")
    for v in rows:
        table.add_row(
            str(v.id),
            v.language,
            Text(", ".join(v.topics) or "all"),
            str(v.readers),
            str(v.items) if v.items else "0 (no mail)",
            Text(v.subject),
        )
    console.print(table)


@app.command("pause")
def pause(issue_id: int) -> None:
    """Pause sending: workers stop claiming batches."""
    with unit_of_work() as session:
        issue = lifecycle.pause(session, issue_id)
        console.print(f"issue {issue_id} is {issue.status}")


@app.command("resume")
def resume(issue_id: int) -> None:
    """Resume a paused issue, or restart one whose sender stopped."""
    settings = get_settings()
    require_signing_key(settings)
    with unit_of_work(settings) as session:
        resume_sending(session, issue_id)
    console.print(f"issue {issue_id} is {IssueStatus.SENDING}")
    deliver(issue_id, settings)


@app.command("to-draft")
def to_draft(issue_id: int) -> None:
    """Return an approved issue to draft, to edit it again (it is rendered anew at approval)."""
    with unit_of_work() as session:
        issue = lifecycle.return_to_draft(session, issue_id)
        console.print(f"issue {issue_id} is {issue.status}")


@app.command("cancel")
def cancel(issue_id: int) -> None:
    """Cancel an issue: nothing more is sent, and its items go back to the pool."""
    with unit_of_work() as session:
        issue = lifecycle.cancel(session, issue_id)
        console.print(f"issue {issue_id} is {issue.status}")


@app.command("overdue")
def overdue() -> None:
    """Scheduled issues due for a while and still without their issue, one a line with the
    reason. Exit code 1 when there is one (for monitoring)."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        rows = overdue_rows(session, settings)
    if not rows:
        console.print("no scheduled issue is overdue")
        return
    for row in rows:
        retry = (
            f", next try {row.next_attempt_at:%Y-%m-%d %H:%M} UTC" if row.next_attempt_at else ""
        )
        what = f"{row.list_slug} issue {row.issue_id}" if row.issue_id else row.list_slug
        console.print(
            f"{what}: due {row.fire_at:%Y-%m-%d %H:%M} UTC, {row.state}, "
            f"{row.attempts} attempt{'s' if row.attempts != 1 else ''}{retry}: {row.error}",
            markup=False,
            highlight=False,
        )
    raise typer.Exit(1)


@app.command("edit-item")
def edit_item(
    issue_id: int,
    item_id: int,
    title: Annotated[str, typer.Option(help="This issue's title for the item.")],
    summary: Annotated[str, typer.Option(help="Plain text; a blank line = new paragraph.")] = "",
) -> None:
    """Give a draft's item this issue's own title and summary."""
    with unit_of_work() as session:
        ii = issue_items.edit_item(session, issue_id, item_id, title=title, summary=summary)
        console.print(f"item {item_id} of issue {issue_id}: {ii.title}", markup=False)


@app.command("add-item")
def add_item(
    issue_id: int,
    title: Annotated[str, typer.Option(help="The item's title.")],
    url: Annotated[str, typer.Option(help="Its link: http or https.")],
    summary: Annotated[str, typer.Option(help="Plain text.")] = "",
    group: Annotated[str, typer.Option(help="Its heading; default: the last item's.")] = "",
) -> None:
    """Add an item by hand to a draft (normalised as collected items are)."""
    with unit_of_work() as session:
        ii = issue_items.add_item(
            session, issue_id, title=title, url=url, summary=summary, group=group
        )
        console.print(
            f"added item {ii.item_id} to issue {issue_id} at position {ii.position}", markup=False
        )


@app.command("schedule")
def schedule(
    issue_id: int,
    when: Annotated[str, typer.Argument(help="YYYY-MM-DD HH:MM in the list's time zone.")],
) -> None:
    """Have an approved issue sent at a time of its list's time zone (`digest run` or beat
    sends it once that time has come)."""
    with unit_of_work() as session:
        issue = schedule_send(session, issue_id, parse_local_time(when))
        tz = issue.mailing_list.timezone
        console.print(
            f"issue {issue_id} is sent at {in_zone(issue.send_at, tz)} ({tz}), "
            f"{issue.send_at:%Y-%m-%d %H:%M} UTC",
            markup=False,
        )


@app.command("unschedule")
def unschedule(issue_id: int) -> None:
    """Take back an approved issue's scheduled send (it stays approved)."""
    with unit_of_work() as session:
        unschedule_send(session, issue_id)
    console.print(f"issue {issue_id} is no longer scheduled")


@app.command("report")
def report(
    issue_id: int,
    kind: Annotated[str | None, typer.Option(help=f"List one kind: {', '.join(KINDS)}.")] = None,
    after: Annotated[int, typer.Option(min=0, help="Rows after this key (paging).")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    search: Annotated[str, typer.Option(help="Addresses containing this.")] = "",
) -> None:
    """The delivery report: counts, or one kind's recipients a page at a time."""
    if kind is not None and kind not in KINDS:
        raise UsageProblem(f"--kind must be one of {', '.join(KINDS)}")
    with unit_of_work() as session:
        issue = lifecycle.get_issue(session, issue_id)
        if kind is None:
            found = issue_report(session, issue)
            console.print(f"issue {issue_id} [{issue.status}]", markup=False)
            for name, count in found.counts.items():
                console.print(f"  {name}: {count}", markup=False)
            return
        chosen: Kind = kind  # type: ignore[assignment]
        page = report_page(session, issue, chosen, after=after, limit=limit, search=search)
    table = Table("key", "email", "at (UTC)", "detail")
    for row in page.rows:
        at = f"{row.at:%Y-%m-%d %H:%M}" if row.at else "-"
        table.add_row(str(row.key), Text(row.email), at, Text(row.detail))
    console.print(table)
    if page.next_after is not None:
        console.print(f"more: --after {page.next_after}")


@app.command("send-rest")
def send_rest(
    issue_id: int,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: send it to them.")] = False,
    wait: Annotated[bool, typer.Option(help="With workers: wait until it is sent.")] = False,
) -> None:
    """Send a sent issue to the confirmed subscribers who have no copy of it (who joined
    later); failed deliveries are not tried again."""
    if not yes:
        raise UsageProblem("this sends mail: add --yes to confirm")
    settings = get_settings()
    require_signing_key(settings)
    with unit_of_work(settings) as session:
        handover = send_to_the_rest(session, issue_id)
    console.print(f"issue {issue_id}: {handover.planned} more recipients planned")
    deliver(issue_id, settings, wait=wait)

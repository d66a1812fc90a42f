"""`digest subscribers`: add, edit, unsubscribe, import CSV, export, list, a person's data and
their erasure, and the suppression list. Each command calls the service function the admin's
pages and the API call, and writes the audit log as they do (by id, never by address)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from digest import overview
from digest.accounts import audit
from digest.cli.common import UsageProblem, cli_actor, console, err, unit_of_work
from digest.models import SubscriptionStatus, SuppressionReason
from digest.subscribers import export, gdpr, manage, suppression
from digest.subscribers.actions import update_preferences
from digest.subscribers.addresses import display_email, normalise_email
from digest.subscribers.lists import get_list
from digest.subscribers.service import import_rows
from digest.subscribers.topics import subscription_of

app = typer.Typer(help="Manage subscribers of a list.", no_args_is_help=True)
ListOpt = Annotated[str, typer.Option("--list", "-l", help="The list's slug.")]
ListsOpt = Annotated[list[str], typer.Option("--list", "-l", help="A list's slug (repeat).")]


@app.command("add")
def add(
    email: str,
    list_slugs: ListsOpt,
    name: str = "",
    status: Annotated[
        str,
        typer.Option(
            help="confirmed: the person's consent was recorded; pending: they get a "
            "confirmation mail first (as an import without --consent-recorded)."
        ),
    ] = "confirmed",
) -> None:
    """Subscribe one address to one or more lists."""
    if status not in ("confirmed", "pending"):
        raise UsageProblem("--status must be confirmed or pending")
    with unit_of_work() as session:
        lists = [get_list(session, slug) for slug in list_slugs]
        added = manage.add_by_hand(
            session,
            email,
            [lst.id for lst in lists],
            name=name,
            consent_recorded=status == "confirmed",
        )
        detail = {
            "lists": sorted(lst.slug for lst in lists),
            "consent_recorded": status == "confirmed",
        }
        audit.record(
            session, cli_actor(), "add_subscriber", "subscriber", added.subscriber_id, detail
        )
        for lst in lists:
            shown = display_email(added.email)
            console.print(f"{shown} is {added.statuses[lst.id]} on {lst.slug}", markup=False)


@app.command("edit")
def edit(
    email: str,
    name: Annotated[str | None, typer.Option(help="The new name.")] = None,
    language: Annotated[str | None, typer.Option(help="fr, es ...; '' for the list's.")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Europe/Paris ...; '' for the list's.")
    ] = None,
    list_slug: Annotated[
        str | None, typer.Option("--list", "-l", help="The list --status applies to.")
    ] = None,
    status: Annotated[
        SubscriptionStatus | None,
        typer.Option(help="pending -> confirmed, or pending/confirmed -> unsubscribed."),
    ] = None,
) -> None:
    """Change a subscriber's name, language, time zone, or status on one list."""
    if status is not None and list_slug is None:
        raise UsageProblem("--status needs --list")
    with unit_of_work() as session:
        subscriber = manage.find_by_address(session, email)
        statuses = {get_list(session, list_slug).id: status} if list_slug and status else {}
        changed = manage.edit(
            session,
            subscriber.id,
            name=name,
            language=language,
            timezone=timezone,
            statuses=statuses,
        )
        if changed:
            audit.record(
                session,
                cli_actor(),
                "edit_subscriber",
                "subscriber",
                subscriber.id,
                {"changed": changed},
            )
        console.print(", ".join(changed) + " changed" if changed else "unchanged", markup=False)


@app.command("unsubscribe")
def unsubscribe(
    email: str,
    list_slug: Annotated[
        str | None, typer.Option("--list", "-l", help="The list's slug (default: every list).")
    ] = None,
) -> None:
    """Stop mail from one list or from all (the subscriber's event, via admin)."""
    with unit_of_work() as session:
        subscriber = manage.find_by_address(session, email)
        list_id = get_list(session, list_slug).id if list_slug else None
        stopped = manage.unsubscribe(session, subscriber.id, list_id)
        slugs = sorted(get_list(session, i).slug for i in stopped)
        if stopped:
            audit.record(
                session,
                cli_actor(),
                "unsubscribe_subscriber",
                "subscriber",
                subscriber.id,
                {"lists": slugs},
            )
        console.print(f"unsubscribed from {', '.join(slugs)}" if slugs else "unchanged")


@app.command("data")
def data(
    email: str,
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Everything stored about one person, as JSON (GDPR)."""
    with unit_of_work() as session:
        found = gdpr.person_data(session, manage.find_by_address(session, email).id)
    text = json.dumps(found, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        err.print(f"wrote {out}", markup=False)


@app.command("erase")
def erase(
    email: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
) -> None:
    """Erase everything about a person (GDPR); a hashed suppression keeps mail away."""
    if not yes:
        raise UsageProblem("erasing cannot be undone: add --yes to confirm")
    with unit_of_work() as session:
        subscriber_id = manage.find_by_address(session, email).id
        done = gdpr.erase(session, subscriber_id)
        audit.record(
            session,
            cli_actor(),
            "erase_subscriber",
            "subscriber",
            subscriber_id,
            {"erased": True, "deliveries": done.deliveries},
        )
    console.print(
        f"erased subscriber {subscriber_id}: {done.subscriptions} subscriptions, "
        f"{done.events} events, {done.deliveries} deliveries; a hashed suppression is kept"
    )


@app.command("suppress")
def suppress(
    email: str, detail: Annotated[str, typer.Option(help="Why, for the record.")] = ""
) -> None:
    """Add an address to the suppression list (reason "manual")."""
    with unit_of_work() as session:
        entry, added = suppression.add_manual(session, email, detail)
        audit.record(
            session, cli_actor(), "add_suppression", "suppression", entry.id, {"added": added}
        )
        shown = display_email(entry.email)
    console.print(f"{shown} suppressed" + ("" if added else " already"), markup=False)


@app.command("unsuppress")
def unsuppress(email: str) -> None:
    """Lift an address's suppression: mail may go to it again."""
    with unit_of_work() as session:
        entry = suppression.find(session, normalise_email(email))
        lifted = suppression.lift(session, entry.id)
        audit.record(
            session,
            cli_actor(),
            "lift_suppression",
            "suppression",
            entry.id,
            {"reason": str(lifted.reason)},
        )
    console.print("suppression lifted", markup=False)


@app.command("suppressed")
def suppressed(
    q: Annotated[str, typer.Option(help="Part of an address.")] = "",
    reason: Annotated[SuppressionReason | None, typer.Option(help="Only this reason.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """Show the suppression list, newest first."""
    with unit_of_work() as session:
        found = suppression.page(session, text=q, reason=reason, limit=limit)
        table = Table("address", "reason", "since", "detail")
        for row in found.rows:
            shown = (
                "erased person (hash)"
                if row.email.startswith(suppression.ERASED_PREFIX)
                else display_email(row.email)
            )
            table.add_row(
                Text(shown), row.reason, row.created_at.strftime("%Y-%m-%d"), Text(row.detail)
            )
        console.print(table)


@app.command("import")
def import_(
    csv_file: Annotated[Path, typer.Argument(help="CSV with an email column (name optional).")],
    list_slug: ListOpt,
    consent_recorded: Annotated[
        bool,
        typer.Option(
            "--consent-recorded",
            help="Each row's consent to this list was recorded: subscribe them confirmed. "
            "Without it, each new row is pending and gets a confirmation mail.",
        ),
    ] = False,
) -> None:
    """Import a CSV; bad rows are reported by line and skipped, the rest imported."""
    if not csv_file.is_file():
        raise UsageProblem(f"no such file: {csv_file}")
    with unit_of_work() as session, csv_file.open(newline="", encoding="utf-8-sig") as stream:
        lst = get_list(session, list_slug)
        result = import_rows(session, lst.id, stream, consent_recorded=consent_recorded)
    for line, message in result.errors[:50]:
        err.print(f"line {line}: {message}", markup=False)
    if len(result.errors) > 50:
        err.print(f"... and {len(result.errors) - 50} more bad rows")
    console.print(
        f"imported into {list_slug}: {result.added} added, {result.updated} updated, "
        f"{result.unchanged} unchanged, {len(result.errors)} rejected, "
        f"{result.asked} asked to confirm by mail",
        markup=False,
    )


@app.command("export")
def export_(
    list_slug: ListOpt,
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
    format_: Annotated[
        export.Format, typer.Option("--format", help="csv or json.")
    ] = export.Format.CSV,
    status: Annotated[SubscriptionStatus | None, typer.Option(help="Only this status.")] = None,
) -> None:
    """Export a list's subscribers as CSV or JSON, streamed (flat memory at any size)."""
    with unit_of_work() as session:
        lst = get_list(session, list_slug)
        selection = export.Selection(list_id=lst.id, status=status)
        if out is None:
            for chunk in export.chunks(session, selection, format_):
                sys.stdout.write(chunk)
            return
        with out.open("w", newline="", encoding="utf-8") as stream:
            for chunk in export.chunks(session, selection, format_):
                stream.write(chunk)
        err.print(f"wrote {out}", markup=False)


@app.command("list")
def list_(
    list_slug: ListOpt,
    status: Annotated[SubscriptionStatus | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """Show a list's subscribers."""
    with unit_of_work() as session:
        lst = get_list(session, list_slug)
        rows = overview.subscriber_rows(session, lst.id, status=status, limit=limit)
        table = Table("email", "name", "status")
        for row in rows:
            # Text, not markup: a name is whatever someone typed into the sign-up form.
            table.add_row(Text(display_email(row.email)), Text(row.name), row.status)
        console.print(table)


@app.command("prefs")
def prefs(
    email: str,
    list_slug: ListOpt,
    language: Annotated[str | None, typer.Option(help="fr, es ...; '' for the list's.")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Europe/Paris ...; '' for the list's.")
    ] = None,
    topics: Annotated[
        str | None, typer.Option(help="Topic slugs, comma-separated; '' for everything.")
    ] = None,
) -> None:
    """Set a reader's language, time zone and topics (what their preferences page sets)."""
    with unit_of_work() as session:
        lst = get_list(session, list_slug)
        subscription = subscription_of(session, lst.id, email)
        changed = update_preferences(
            session,
            subscription.id,
            language=language,
            timezone=timezone,
            topics=[t for t in topics.split(",") if t.strip()] if topics is not None else None,
        )
        sub = subscription.subscriber
        console.print(
            f"{display_email(sub.email)} on {lst.slug}: language {sub.language or '-'}, "
            f"time zone {sub.timezone or '-'}, topics {subscription.topic_ids or 'all'}"
            + ("" if changed else " (unchanged)"),
            markup=False,
        )

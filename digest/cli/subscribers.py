"""`digest subscribers`: add, import CSV, export, list."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from digest import overview
from digest.cli.common import UsageProblem, console, err, unit_of_work
from digest.models import SubscriptionStatus
from digest.subscribers.actions import update_preferences
from digest.subscribers.addresses import display_email
from digest.subscribers.lists import get_list
from digest.subscribers.service import add_subscriber, export_csv, import_rows
from digest.subscribers.topics import subscription_of

app = typer.Typer(help="Manage subscribers of a list.", no_args_is_help=True)
ListOpt = Annotated[str, typer.Option("--list", "-l", help="The list's slug.")]


@app.command("add")
def add(
    email: str,
    list_slug: ListOpt,
    name: str = "",
    status: Annotated[str, typer.Option(help="confirmed or pending.")] = "confirmed",
) -> None:
    """Subscribe one address to a list."""
    with unit_of_work() as session:
        lst = get_list(session, list_slug)
        sub = add_subscriber(session, lst.id, email, name, status)
        shown = display_email(sub.subscriber.email)
        console.print(f"{shown} is {sub.status} on {lst.slug}", markup=False)


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
def export(
    list_slug: ListOpt,
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Export a list's subscribers as CSV."""
    with unit_of_work() as session:
        lst = get_list(session, list_slug)
        if out is None:
            export_csv(session, lst.id, sys.stdout)
            return
        with out.open("w", newline="", encoding="utf-8") as stream:
            count = export_csv(session, lst.id, stream)
        err.print(f"wrote {count} subscribers to {out}")


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

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
from digest.subscribers.addresses import display_email
from digest.subscribers.lists import get_list
from digest.subscribers.service import add_subscriber, export_csv, import_rows

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

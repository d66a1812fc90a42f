"""`digest bounces`: returned mail from files, the delivery events, paused domains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from digest.cli.common import UsageProblem, console, unit_of_work
from digest.cli.inbound import process_paths
from digest.config import get_settings
from digest.subscribers.feedback import list_events, paused_domains, resume_domain

app = typer.Typer(
    help="Bounces, complaints, delivery events, paused domains.", no_args_is_help=True
)


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Message files or Maildir folders.")],
) -> None:
    """Apply returned mail (bounces, complaints, mailto: unsubscribes) from files or Maildirs,
    as `digest inbound maildir` does; each message in its own transaction."""
    process_paths(paths, get_settings(), move_seen=False)


@app.command("events")
def events(
    issue: Annotated[int | None, typer.Option(help="Only this issue's events.")] = None,
    email: Annotated[str | None, typer.Option(help="Only this address's events.")] = None,
    unmatched: Annotated[bool, typer.Option(help="Only events that named no delivery.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Delivery events, newest first: bounces, complaints, blocks, unsubscribes by mail and
    the relay's refusals, with what was done about each."""
    with unit_of_work() as session:
        rows = list_events(session, issue_id=issue, email=email, unmatched=unmatched, limit=limit)
        for row in rows:
            record = {
                "id": row.id,
                "at": row.created_at.isoformat(timespec="seconds"),
                "verdict": row.verdict.value,
                "action": row.action.value,
                "via": row.via.value,
                "matched": row.matched,
                "issue": row.issue_id,
                "delivery": row.delivery_id,
                "email": row.email,
                "status": row.status,
                "detail": row.detail,
            }
            if as_json:
                console.print(json.dumps(record), markup=False, highlight=False)
            else:
                console.print(
                    f"{record['at']}  {row.verdict.value:<12} {row.action.value:<13} "
                    f"{row.via.value:<7} issue {row.issue_id or '-'}  {row.email or '-'}  "
                    f"{row.status} {row.detail[:80]}",
                    markup=False,
                    highlight=False,
                )


@app.command("domains")
def domains() -> None:
    """Destination domains paused because they refuse our mail."""
    with unit_of_work() as session:
        for domain, row in sorted(paused_domains(session).items()):
            until = row.paused_until.isoformat(timespec="minutes")
            console.print(f"{domain}  until {until}  {row.reason}", markup=False, highlight=False)


@app.command("resume-domain")
def resume(domain: Annotated[str, typer.Argument(help="The destination domain.")]) -> None:
    """Let a paused destination domain's deliveries go again."""
    with unit_of_work() as session:
        if not resume_domain(session, domain):
            raise UsageProblem(f"domain {domain} is not paused")
    console.print(f"domain {domain} resumed")

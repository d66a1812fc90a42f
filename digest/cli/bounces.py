"""`digest bounces import`: apply returned mail (DSNs, complaints) from files or a Maildir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from digest.cli.common import UsageProblem, console, err, unit_of_work
from digest.subscribers.bounces import process_report

app = typer.Typer(help="Process bounces and complaints.", no_args_is_help=True)


def _messages(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            # A Maildir keeps messages in new/ and cur/; a plain folder holds .eml files.
            subdirs = [path / "new", path / "cur"]
            folders = [d for d in subdirs if d.is_dir()] or [path]
            for folder in folders:
                yield from sorted(p for p in folder.iterdir() if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise UsageProblem(f"no such file or folder: {path}")


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Message files or Maildir folders.")],
) -> None:
    """Suppress hard-bounced and complaining addresses; each message in its own transaction."""
    files = list(_messages(paths))
    totals = {"bounce": 0, "complaint": 0, "none": 0, "error": 0}
    suppressed = 0
    for path in files:
        try:
            with unit_of_work() as session:
                result = process_report(session, path.read_bytes())
        except Exception as exc:  # one bad message never stops the rest
            totals["error"] += 1
            err.print(f"{path}: {exc}", markup=False)
            continue
        totals[result.kind] += 1
        suppressed += len(result.permanent)
    console.print(
        f"{len(files)} messages: {totals['bounce']} bounces, {totals['complaint']} complaints, "
        f"{totals['none']} not reports, {totals['error']} unreadable; "
        f"{suppressed} addresses suppressed"
    )

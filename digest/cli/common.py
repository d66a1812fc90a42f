"""What every command shares: the consoles, one unit of work, and how errors are told."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from sqlalchemy.orm import Session

from digest.db import session_scope

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class UsageProblem(Exception):
    """Raised by commands for bad input: printed as one line, exit code 2."""


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction for a command: committed when the command succeeds."""
    with session_scope() as session:
        yield session

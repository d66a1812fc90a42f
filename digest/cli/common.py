"""What every command shares: the consoles, the settings, one unit of work, and how errors
are told. The CLI is an edge: it reads the settings once per command and passes them on."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from sqlalchemy.orm import Session

from digest.accounts import audit
from digest.accounts.audit import Actor
from digest.config import Settings, get_settings
from digest.db import session_scope
from digest.keys import public_url_warning, signing_keys

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class UsageProblem(Exception):
    """Raised by commands for bad input: printed as one line, exit code 2."""


@contextmanager
def unit_of_work(settings: Settings | None = None) -> Iterator[Session]:
    """One transaction for a command: committed when the command succeeds."""
    with session_scope((settings or get_settings()).database_url) as session:
        yield session


def require_signing_key(settings: Settings, *, warn_http: bool = True) -> None:
    """Before a command that signs or reads links: refuse a missing or published key (InsecureKey
    is a DigestError: one line, exit 2) and warn when the links would not be https."""
    signing_keys(settings)
    if warn_http and (warning := public_url_warning(settings)):
        err.print(f"warning: {warning}", markup=False, highlight=False)


def cli_actor() -> Actor:
    """Who acts from the command line, as the audit log names them (cli:<login>)."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    return audit.cli_actor(login)

"""`digest users`: add, list, disable, enable, set a password or a role. Every change is in
the audit log as done by `cli:<login>`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from digest.accounts import audit, users
from digest.cli.common import UsageProblem, cli_actor, console, unit_of_work
from digest.models import Role

app = typer.Typer(
    help="Manage the people who sign in to the editor and the API.", no_args_is_help=True
)
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _password(from_stdin: bool) -> str:
    """From stdin (one line), else asked twice without echo; never an argument (it would sit
    in the shell's history and the process list)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise UsageProblem("no terminal to ask for the password: use --password-stdin")
    if not password:
        raise UsageProblem("empty password")
    return password


@app.command("add")
def add(
    email: str,
    role: Annotated[Role, typer.Option(help="viewer, editor, publisher or admin.")] = Role.VIEWER,
    name: str = "",
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a user who signs in with this address and a password."""
    password = _password(password_stdin)
    with unit_of_work() as session:
        user = users.add_user(session, email, password, role=role, name=name)
        audit.record(session, cli_actor(), "add_user", "user", user.id, {"role": user.role.value})
        console.print(f"added {user.email} ({user.role})", markup=False)


@app.command("list")
def list_users() -> None:
    """Every user with their role."""
    with unit_of_work() as session:
        rows = users.list_users(session)
        table = Table("id", "email", "name", "role", "status", "last sign-in")
        for user in rows:
            last = user.last_signin_at.strftime("%Y-%m-%d %H:%M") if user.last_signin_at else "-"
            status = "disabled" if user.disabled else "active"
            table.add_row(str(user.id), user.email, user.name, user.role, status, last)
    console.print(table)


@app.command("disable")
def disable(email: str) -> None:
    """Disable a user: signed out everywhere, API tokens revoked (the last admin stays)."""
    with unit_of_work() as session:
        user = users.disable_user(session, email)
        audit.record(session, cli_actor(), "disable", "user", user.id)
        console.print(f"disabled {user.email}", markup=False)


@app.command("enable")
def enable(email: str) -> None:
    """Enable a disabled user again."""
    with unit_of_work() as session:
        user = users.enable_user(session, email)
        audit.record(session, cli_actor(), "enable", "user", user.id)
        console.print(f"enabled {user.email}", markup=False)


@app.command("set-password")
def set_password(email: str, password_stdin: PasswordStdin = False) -> None:
    """Set a user's password; their sessions end."""
    password = _password(password_stdin)
    with unit_of_work() as session:
        user = users.set_password(session, email, password)
        audit.record(session, cli_actor(), "set_password", "user", user.id)
        console.print(f"password set for {user.email}", markup=False)


@app.command("set-role")
def set_role(email: str, role: Role) -> None:
    """Change a user's role."""
    with unit_of_work() as session:
        user = users.set_role(session, email, role)
        audit.record(session, cli_actor(), "set_role", "user", user.id, {"role": role.value})
        console.print(f"{user.email} is now {user.role}", markup=False)

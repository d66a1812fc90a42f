"""The `digest` command (Typer). An edge: it may import any digest module, Celery and uvicorn."""

from __future__ import annotations

import sys

import click
import typer
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError

from digest.cli import bounces, inbound, issues, lists, run, sources, subscribers, users
from digest.cli.common import UsageProblem, err
from digest.errors import DigestError

app = typer.Typer(
    name="digest",
    help="Collect news, compose monthly digests, and deliver them to every subscriber.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
run.register(app)
app.add_typer(lists.app, name="lists")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(issues.app, name="issues")
app.add_typer(bounces.app, name="bounces")
app.add_typer(inbound.app, name="inbound")
app.add_typer(sources.app, name="sources")
app.add_typer(users.app, name="users")


# typer >= 0.2x carries its own copy of click: its usage errors, Exit and Abort are not click's
# classes. Catch both, whichever typer is installed.
_USAGE_ERRORS: tuple[type[Exception], ...] = tuple(
    {click.ClickException}
    | {c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"}
)
_EXITS: tuple[type[Exception], ...] = (click.exceptions.Exit, typer.Exit)
_ABORTS: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _configure_logging() -> None:
    """JSON log lines for every command when DIGEST_LOG_FORMAT=json (workers, beat and the web
    server too); text stays as each command sets it."""
    from digest.config import get_settings

    try:
        log_format = get_settings().log_format
    except ValueError:
        return  # the command that reads the settings says what is wrong (--help still works)
    if log_format == "json":
        from digest.logs import configure_logging

        configure_logging("json")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: bad input is one clear line on stderr and exit code 2, never a traceback."""
    try:
        _configure_logging()
        # Without standalone mode, click returns a typer.Exit code instead of exiting.
        code = app(args=argv, standalone_mode=False)
    except _EXITS as exc:
        return int(getattr(exc, "exit_code", 1))
    except _ABORTS:
        err.print("aborted")
        return 1
    except _USAGE_ERRORS as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if message:  # empty: a group run bare, whose help is already printed
            err.print(f"error: {message}", markup=False, highlight=False)
        return 2
    except (DigestError, UsageProblem, ValueError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    except IntegrityError as exc:
        err.print(f"error: conflicting data: {_one_line(exc)}", markup=False, highlight=False)
        return 2
    except (DataError, OverflowError) as exc:  # say, an id past what the store holds
        err.print(f"error: value out of range: {_one_line(exc)}", markup=False, highlight=False)
        return 2
    except (OperationalError, ProgrammingError) as exc:
        msg = _one_line(exc)
        if "no such table" in msg or "does not exist" in msg:
            msg = "the database has no tables yet: run `digest init` first"
        err.print(f"error: database: {msg}", markup=False, highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())

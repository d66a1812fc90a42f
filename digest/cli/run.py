"""Top-level commands: init, demo, run, collect, serve, worker, beat."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from digest.cli.common import UsageProblem, console, require_signing_key
from digest.config import get_settings

if TYPE_CHECKING:
    from celery import Celery


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("demo")(demo)
    app.command("run")(run)
    app.command("collect")(collect)
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.command("beat")(beat)


def init() -> None:
    """Create or upgrade the database schema."""
    from digest.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    console.print(f"database ready: {settings.database_url}", markup=False)


def demo(
    subscribers: Annotated[int, typer.Option(min=1, help="Sample subscribers to create.")] = 1000,
) -> None:
    """Run the whole job on embedded defaults: collect, compose, approve, preview, deliver."""
    from digest.cli.demo import run_demo

    run_demo(subscribers)


def run() -> None:
    """Run what is due now, once: each list's scheduled issue (its sources collected, then
    composed up to its scheduled time), then the other due sources. Run it from cron
    without a broker; with one, it hands both to the workers."""
    from digest.cli.scheduling import run_once

    run_once()


def collect(
    source: Annotated[int | None, typer.Option(help="Only this source id.")] = None,
) -> None:
    """Fetch every due source (or one) and store new items."""
    from digest.cli.collecting import collect_now

    collect_now(source)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    reload: bool = False,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (its URL holds the reader's token).")
    ] = False,
) -> None:
    """Serve the web app: unsubscribe, preferences and view-online pages."""
    import logging

    import uvicorn

    require_signing_key(get_settings())
    _offer_first_run()
    # The app's own log (sign-ins, failures, errors) beside uvicorn's.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    uvicorn.run(
        "digest.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        access_log=access_log,
        # The app reads X-Forwarded-For itself, from DIGEST_TRUSTED_PROXIES only: uvicorn's
        # default would believe it from any local peer.
        proxy_headers=False,
    )


def _offer_first_run() -> None:
    """No user yet: make the one-time setup token (unless DIGEST_SETUP_TOKEN chose one) and
    print the first-run link that holds it; only its holder, or a browser on this machine,
    can create the first admin."""
    import os
    import secrets

    from sqlalchemy.exc import SQLAlchemyError

    from digest.accounts.users import count_users
    from digest.cli.common import unit_of_work
    from digest.config import reset_settings

    settings = get_settings()
    try:
        with unit_of_work(settings) as session:
            if count_users(session):
                return
    except SQLAlchemyError as exc:  # no schema yet: the app says so on its first request
        console.print(f"warning: could not count the users ({exc.__class__.__name__})")
        return
    if not settings.setup_token:
        os.environ["DIGEST_SETUP_TOKEN"] = secrets.token_urlsafe(24)
        reset_settings()  # the app, made after this, reads the token
        settings = get_settings()
    url = f"{settings.public_url.rstrip('/')}/editor/setup?token={settings.setup_token}"
    console.print(f"No user yet. Create the first admin at:\n  {url}", markup=False)


def _celery_app() -> Celery:
    if not get_settings().broker_url:
        raise UsageProblem("no broker: set DIGEST_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    from workers.app import app

    return app


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues.")] = "collect,send,default",
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    loglevel: str = "INFO",
) -> None:
    """Start a Celery worker (needs DIGEST_BROKER_URL)."""
    app = _celery_app()
    require_signing_key(get_settings())  # workers sign every link they send
    app.worker_main(
        [
            "worker",
            f"--queues={queues}",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            # Workers share work through the database leases, not through each other.
            "--without-gossip",
            "--without-mingle",
        ]
    )


def beat(loglevel: str = "INFO") -> None:
    """Start Celery beat: each list's schedule and periodic collection (needs DIGEST_BROKER_URL)."""
    app = _celery_app()
    app.start(["beat", f"--loglevel={loglevel}"])

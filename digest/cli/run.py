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
    app.command("doctor")(doctor)
    app.command("retention")(retention)


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
    from uvicorn.config import LOGGING_CONFIG

    from digest.logs import configure_logging

    settings = get_settings()
    require_signing_key(settings)
    _offer_first_run()
    # The app's own log (sign-ins, failures, errors) beside uvicorn's; with JSON, uvicorn's too.
    configure_logging(settings.log_format, logging.INFO)
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
        # JSON lines: uvicorn's loggers go through the root handler configured above.
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve /metrics of this worker and its pool here (default DIGEST_METRICS_PORT).",
        ),
    ] = None,
) -> None:
    """Start a Celery worker (needs DIGEST_BROKER_URL)."""
    settings = get_settings()
    app = _celery_app()
    require_signing_key(settings)  # workers sign every link they send
    port = settings.metrics_port if metrics_port is None else metrics_port
    if port:
        _serve_worker_metrics(port)
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


def _serve_worker_metrics(port: int) -> None:
    """The worker and its pool processes count in files of a directory of their own
    (prometheus-client's multiprocess mode); this process serves their sum on `port`."""
    import atexit
    import os
    import shutil
    import tempfile

    from prometheus_client import start_http_server

    from digest.db import session_factory
    from digest.live_metrics import QUEUES, LiveCollector, redis_client
    from digest.metrics import registry, use_multiprocess

    settings = get_settings()
    directory = tempfile.mkdtemp(prefix="digest-metrics-")
    parent = os.getpid()

    def remove() -> None:
        if os.getpid() == parent:  # not in a pool process that inherited the hook
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    use_multiprocess(directory)
    live = LiveCollector(
        session_factory(settings.database_url), redis_client(settings.broker_url), QUEUES
    )
    start_http_server(port, addr=settings.metrics_host, registry=registry(live))
    console.print(f"metrics on http://{settings.metrics_host}:{port}/metrics", markup=False)


def doctor(
    timeout: Annotated[
        float,
        typer.Option(min=0.1, max=300, help="Seconds for each network step of a check."),
    ] = 3.0,
) -> None:
    """Check this deployment: database, migrations, broker, relay, public URL, secret key,
    DKIM. One line each; exit code 1 when any fails."""
    from digest.checks import doctor as run_checks

    checks = run_checks(get_settings(), timeout)
    for check in checks:
        console.print(check.line(), markup=False, highlight=False)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise typer.Exit(1)


def retention(
    months: Annotated[
        int | None,
        typer.Option(min=1, help="Keep this many months (default DIGEST_RETENTION_MONTHS)."),
    ] = None,
) -> None:
    """Summarise old delivery rows and issue events into per-issue totals and remove them, in
    chunks that never wait for a send (beat runs it daily with a broker)."""
    from digest.db import session_factory
    from digest.retention import prune

    settings = get_settings()
    keep = months or settings.retention_months
    if not keep:
        console.print("retention is off (DIGEST_RETENTION_MONTHS=0): nothing removed")
        return
    done = prune(
        session_factory(settings.database_url), months=keep, chunk=settings.retention_chunk
    )
    console.print(
        f"removed {done.deliveries} delivery rows of {done.issues} issues and {done.events} "
        f"events older than {keep} months, in {done.chunks} chunks ({done.seconds:.1f} s)",
        markup=False,
    )


def beat(loglevel: str = "INFO") -> None:
    """Start Celery beat: each list's schedule and periodic collection (needs DIGEST_BROKER_URL)."""
    app = _celery_app()
    app.start(["beat", f"--loglevel={loglevel}"])

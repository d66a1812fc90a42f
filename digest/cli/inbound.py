"""`digest inbound`: the one way in for returned mail (bounces, complaints, `mailto:`
unsubscribes): an SMTP or LMTP listener for the return-path domain, a Maildir, an IMAP
mailbox. Each message is applied by `digest.subscribers.feedback.process_inbound` in its own
transaction; one that fails is reported and the rest go on."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from digest.cli.common import UsageProblem, console, err, require_signing_key, unit_of_work
from digest.config import Settings, get_settings
from digest.subscribers.feedback import (
    InboundResult,
    accepted_domains,
    domain_of,
    inbound_context,
    process_inbound,
)

app = typer.Typer(
    help="Receive returned mail: SMTP/LMTP listener, Maildir, IMAP.", no_args_is_help=True
)

MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def receive(
    raw: bytes, settings: Settings, envelope_recipients: list[str] | tuple[str, ...] = ()
) -> InboundResult:
    """One message, one transaction."""
    with unit_of_work(settings) as session:
        context = inbound_context(session, settings)
        return process_inbound(session, raw, context, envelope_recipients=envelope_recipients)


class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.total = self.unmatched = self.acted = self.errors = 0

    def add(self, result: InboundResult) -> None:
        self.total += 1
        self.counts[result.verdict.value] = self.counts.get(result.verdict.value, 0) + 1
        self.unmatched += not result.matched
        self.acted += result.acted

    def line(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items())) or "none"
        return (
            f"{self.total + self.errors} messages: {kinds}; {self.unmatched} unmatched, "
            f"{self.errors} unreadable; {self.acted} acted on"
        )


def _messages(paths: list[Path], new_only: bool) -> Iterator[tuple[Path, bool]]:
    """(file, in a Maildir's new/) for each message; `new_only`: a Maildir's new/ only."""
    for path in paths:
        if path.is_dir():
            # A Maildir keeps messages in new/ and cur/; a plain folder holds .eml files.
            new, cur = path / "new", path / "cur"
            if new.is_dir() or cur.is_dir():
                for folder in (new,) if new_only else (new, cur):
                    if folder.is_dir():
                        for p in sorted(folder.iterdir()):
                            if p.is_file():
                                yield p, folder == new
            else:
                yield from ((p, False) for p in sorted(path.iterdir()) if p.is_file())
        elif path.is_file():
            yield path, False
        else:
            raise UsageProblem(f"no such file or folder: {path}")


def process_paths(paths: list[Path], settings: Settings, *, move_seen: bool) -> Tally:
    require_signing_key(settings, warn_http=False)
    tally = Tally()
    for path, is_new in list(_messages(paths, new_only=move_seen)):
        try:
            raw = path.read_bytes()[:MAX_MESSAGE_BYTES]
            tally.add(receive(raw, settings))
        except Exception as exc:  # one bad message never stops the rest
            tally.errors += 1
            err.print(f"{path}: {type(exc).__name__}: {exc}", markup=False, highlight=False)
            continue
        if move_seen and is_new:
            # Read: into cur/ with the Seen flag, as a mail client would move it.
            path.rename(path.parent.parent / "cur" / f"{path.name}:2,S")
    console.print(tally.line(), markup=False, highlight=False)
    return tally


@app.command("maildir")
def maildir(
    paths: Annotated[list[Path], typer.Argument(help="Maildir folders (or message files).")],
) -> None:
    """Apply every message in the Maildirs; those in new/ move to cur/ once applied, so the
    next run (from cron, say) reads only what arrived since."""
    process_paths(paths, get_settings(), move_seen=True)


class _Handler:
    """aiosmtpd handler: takes mail for our domains only, applies each message off the
    event loop, answers 250 once it is committed (451 when it could not be: the sender's
    MTA tries again, nothing is lost)."""

    def __init__(self, settings: Settings, domains: set[str]) -> None:
        self.settings, self.domains = settings, domains

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if domain_of(address) not in self.domains:
            return "550 5.7.1 not a domain of this listener"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            result = await asyncio.to_thread(
                receive, raw[:MAX_MESSAGE_BYTES], self.settings, list(envelope.rcpt_tos)
            )
        except Exception as exc:
            err.print(f"inbound message not applied: {type(exc).__name__}: {exc}", markup=False)
            return "451 4.3.0 could not record the message; try again later"
        console.print(
            f"{result.verdict.value} matched={result.matched} acted={result.acted}",
            markup=False,
            highlight=False,
        )
        return "250 OK"


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 2525,
    lmtp: Annotated[bool, typer.Option(help="Speak LMTP (behind an MTA) instead of SMTP.")] = False,
) -> None:
    """Listen for returned mail for the return-path domain (point its MX, or your MTA's
    transport, here). Runs until interrupted."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.lmtp import LMTP

    settings = get_settings()
    require_signing_key(settings, warn_http=False)
    with unit_of_work(settings) as session:
        domains = accepted_domains(session, settings)
    handler = _Handler(settings, domains)

    class _Controller(Controller):
        def factory(self) -> Any:
            if lmtp:
                return LMTP(self.handler, data_size_limit=MAX_MESSAGE_BYTES)
            return super().factory()  # type: ignore[no-untyped-call]

    controller = _Controller(
        handler, hostname=host, port=port, data_size_limit=MAX_MESSAGE_BYTES, decode_data=False
    )
    controller.start()
    kind = "LMTP" if lmtp else "SMTP"
    console.print(
        f"inbound {kind} listening on {host}:{port} for {', '.join(sorted(domains))}",
        markup=False,
        highlight=False,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        controller.stop()


@app.command("imap")
def imap(
    host: Annotated[str, typer.Option(help="The IMAP server.")],
    user: Annotated[str, typer.Option(help="The mailbox's user name.")],
    password_env: Annotated[
        str, typer.Option(help="The environment variable that holds the password.")
    ] = "DIGEST_IMAP_PASSWORD",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 993,
    tls: Annotated[bool, typer.Option(help="IMAP over TLS (993); off: STARTTLS.")] = True,
    folder: Annotated[str, typer.Option(help="The folder returned mail lands in.")] = "INBOX",
) -> None:
    """Apply the unread messages of an IMAP folder and mark each applied one read."""
    settings = get_settings()
    require_signing_key(settings, warn_http=False)
    password = os.environ.get(password_env)
    if not password:
        raise UsageProblem(f"set the password in {password_env}")
    client: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, port) if tls else imaplib.IMAP4(host, port)
    if not tls:
        client.starttls()
    tally = Tally()
    try:
        client.login(user, password)
        if client.select(folder)[0] != "OK":
            raise UsageProblem(f"no such IMAP folder: {folder}")
        _, data = client.uid("SEARCH", "UNSEEN")
        for uid in (data[0] or b"").split():
            _, parts = client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
            raw = next((p[1] for p in parts if isinstance(p, tuple)), b"")
            try:
                tally.add(receive(bytes(raw)[:MAX_MESSAGE_BYTES], settings))
            except Exception as exc:
                tally.errors += 1
                err.print(f"message {uid.decode()}: {type(exc).__name__}: {exc}", markup=False)
                continue
            client.uid("STORE", uid.decode(), "+FLAGS", "(\\Seen)")
    except imaplib.IMAP4.error as exc:
        raise UsageProblem(f"IMAP: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            client.logout()
    console.print(tally.line(), markup=False, highlight=False)

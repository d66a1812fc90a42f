"""Checks of a deployment, each one line: what /readyz asks, and what `digest doctor` says.

Every check returns a `Check` instead of raising: a report names everything wrong at once.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.db import get_engine, ping
from digest.errors import DigestError
from digest.keys import public_url_warning, signing_keys
from digest.migrate import alembic_config

TIMEOUT = 3.0  # seconds for each network check


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL':4}  {self.name:10} {self.detail}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")[:300]


def database(session: Callable[[], Session]) -> Check:
    try:
        with session() as s:
            ping(s)
    except Exception as exc:
        return Check("database", False, f"unreachable ({_reason(exc)})")
    return Check("database", True, "reachable")


def migrations(engine: Engine, url: str) -> Check:
    """The schema is at Alembic's head (what `digest init` brings it to)."""
    try:
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:
        return Check("migrations", False, f"cannot read the schema's revision ({_reason(exc)})")
    if current is None:
        return Check("migrations", False, f"no migration recorded: run `digest init` ({head})")
    if current != head:
        return Check("migrations", False, f"schema at {current}, code at {head}: run `digest init`")
    return Check("migrations", True, f"at head ({head})")


def redis_ping(name: str, url: str, timeout: float = TIMEOUT) -> Check:
    client: Any = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except Exception as exc:
        return Check(name, False, f"{_safe_url(url)} unreachable ({_reason(exc)})")
    finally:
        client.close()
    return Check(name, True, f"{_safe_url(url)} answers PING")


def _safe_url(url: str) -> str:
    """A URL without its password, to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def readiness(settings: Settings, session: Callable[[], Session]) -> list[Check]:
    """What must answer before this process can do its work: the database, and Redis when
    one is configured (the broker, or the shared counters)."""
    checks = [database(session)]
    for name, url in (("broker", settings.broker_url), ("redis", settings.shared_redis_url)):
        if url and url.startswith(("redis://", "rediss://")):
            if name == "redis" and url == settings.broker_url:
                continue  # the same server, already asked
            checks.append(redis_ping(name, url))
    return checks


def relay(settings: Settings, timeout: float = TIMEOUT) -> list[Check]:
    """Each SMTP relay greets, answers EHLO, and offers STARTTLS when it is to be used (or
    speaks TLS at once for `tls`)."""
    if settings.transport != "smtp":
        return [Check("relay", True, f"transport is {settings.transport}: no relay to check")]
    relays = [
        (r.name or f"{r.host}:{r.port}", r.host, r.port, r.security)
        for r in settings.smtp_transports
    ] or [
        (
            f"{settings.smtp_host}:{settings.smtp_port}",
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_security,
        )
    ]
    return [
        asyncio.run(_relay(name, host, port, security, timeout))
        for name, host, port, security in relays
    ]


async def _relay(name: str, host: str, port: int, security: str, timeout: float) -> Check:
    label = f"relay {name}"
    context = ssl.create_default_context()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context if security == "tls" else None),
            timeout,
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return Check(label, False, f"cannot connect ({_reason(exc)})")
    try:
        greeting = await _reply(reader, timeout)
        if greeting[0] != 220:
            return Check(label, False, f"greeting refused: {greeting[0]} {greeting[1]}")
        writer.write(f"EHLO {socket.gethostname()}\r\n".encode())
        code, text = await _reply(reader, timeout)
        if code != 250:
            return Check(label, False, f"EHLO refused: {code} {text}")
        offers = {line.split()[0].upper() for line in text.splitlines() if line.split()}
        if security == "starttls":
            if "STARTTLS" not in offers:
                return Check(label, False, "no STARTTLS offered, and security is starttls")
            writer.write(b"STARTTLS\r\n")
            code, text = await _reply(reader, timeout)
            if code != 220:
                return Check(label, False, f"STARTTLS refused: {code} {text}")
            try:
                await asyncio.wait_for(writer.start_tls(context, server_hostname=host), timeout)
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                return Check(label, False, f"TLS handshake failed ({_reason(exc)})")
            writer.write(f"EHLO {socket.gethostname()}\r\n".encode())
            code, text = await _reply(reader, timeout)
            if code != 250:
                return Check(label, False, f"EHLO after STARTTLS refused: {code} {text}")
            return Check(label, True, "EHLO and STARTTLS answered")
        tls = "over TLS" if security == "tls" else "plain (security none)"
        return Check(label, True, f"EHLO answered, {tls}")
    except (OSError, TimeoutError, ValueError) as exc:
        return Check(label, False, f"conversation failed ({_reason(exc)})")
    finally:
        writer.close()


async def _reply(reader: asyncio.StreamReader, timeout: float) -> tuple[int, str]:
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(reader.readline(), timeout)
        if not raw:
            raise ValueError("connection closed")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line[4:])
        if len(line) < 4 or line[3] != "-":
            return int(line[:3]), "\n".join(lines)


def secret_key(settings: Settings) -> Check:
    try:
        keys = signing_keys(settings)
    except DigestError as exc:
        return Check("secret key", False, str(exc).splitlines()[0])
    return Check("secret key", True, f"set ({len(keys)} key(s) accepted)")


def public_url(settings: Settings, timeout: float = TIMEOUT) -> Check:
    if warning := public_url_warning(settings):
        return Check("public URL", False, warning)
    parts = urlsplit(settings.public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check("public URL", False, f"{settings.public_url!r} is not an http(s) URL")
    probe = settings.public_url.rstrip("/") + "/healthz"
    try:
        # The system's trust store, as for the relay (SSL_CERT_FILE may name another).
        answer = httpx.get(probe, timeout=timeout, verify=ssl.create_default_context())
    except httpx.HTTPError as exc:
        return Check("public URL", False, f"{probe} does not answer ({_reason(exc)})")
    if answer.status_code != 200:
        return Check("public URL", False, f"{probe} answers {answer.status_code}, not 200")
    return Check("public URL", True, f"{settings.public_url} serves the app")


# The DKIM check, when signing is configured: `dkim_check` is filled in by the module that
# signs (it knows its selector, domain and key); until then doctor says signing is off.
DkimCheck = Callable[[Settings], Check]
dkim_check: DkimCheck | None = None


def dkim(settings: Settings) -> Check:
    if dkim_check is None or not getattr(settings, "dkim_selector", None):
        return Check("DKIM", True, "signing is off (left to the relay)")
    return dkim_check(settings)


def doctor(settings: Settings, timeout: float = TIMEOUT) -> list[Check]:
    """Every check of a deployment, in the order an operator fixes them; `timeout` seconds for
    each network step (a relay or URL across a slow link, or a busy machine, needs more)."""
    url = settings.database_url
    engine = get_engine(url)
    checks = [database(sessionmaker(engine))]
    if checks[0].ok:
        checks.append(migrations(engine, url))
    else:
        checks.append(Check("migrations", False, "not checked: no database"))
    if settings.broker_url:
        if settings.broker_url.startswith(("redis://", "rediss://")):
            checks.append(redis_ping("broker", settings.broker_url, timeout))
        else:
            checks.append(Check("broker", False, "only a redis:// broker is supported"))
    else:
        checks.append(Check("broker", True, "none: the pipeline runs in-process"))
    checks += relay(settings, timeout)
    checks += [public_url(settings, timeout), secret_key(settings), dkim(settings)]
    return checks

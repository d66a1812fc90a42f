"""`digest doctor` on a deployment that works, then on each of seven broken ones: it names
what is wrong in one line and exits 1. Real parts: a database migrated by `digest init`,
Redis, an SMTP relay with STARTTLS, the web app on https, all on 127.0.0.1."""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from digest.cli import main
from digest.config import Settings, reset_settings
from digest.web.app import create_app
from tests.conftest import scratch_postgres
from tests.helpers import run_digest
from tests.processes import wait_until
from tests.smtp_server import SMTPServer, free_port


@pytest.fixture(scope="module")
def migrated() -> Iterator[str]:
    """A database `digest init` brought to the newest schema."""
    with scratch_postgres(f"digest_doctor_{os.getpid()}") as url:
        done = run_digest("init", env={"DIGEST_DATABASE_URL": url})
        assert done.returncode == 0, done.stderr
        yield url


@pytest.fixture
def deployment(migrated: str, redis_url: str, certs: tuple[Path, Path]) -> Iterator[dict[str, str]]:
    """The environment of a deployment where every check passes."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certs)
    web_port = free_port()
    env = {
        "DIGEST_DATABASE_URL": migrated,
        "DIGEST_BROKER_URL": redis_url,
        "DIGEST_SECRET_KEY": "a-long-random-key-for-the-doctor-test-0123456789",
        "DIGEST_PUBLIC_URL": f"https://127.0.0.1:{web_port}",
        "DIGEST_TRANSPORT": "smtp",
        "DIGEST_SMTP_HOST": "127.0.0.1",
        "DIGEST_SMTP_SECURITY": "starttls",
        # The test's certificate is the trust store (of the relay's and the web's TLS).
        "SSL_CERT_FILE": str(certs[0]),
    }
    config = uvicorn.Config(
        create_app(Settings(database_url=migrated, secret_key=env["DIGEST_SECRET_KEY"])),
        host="127.0.0.1",
        port=web_port,
        log_level="error",
        ssl_certfile=str(certs[0]),
        ssl_keyfile=str(certs[1]),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with SMTPServer(tls_context=tls, require_starttls=True) as relay:
        env["DIGEST_SMTP_PORT"] = str(relay.port)
        try:
            wait_until(lambda: server.started, 20, what="uvicorn to start")
            yield env
        finally:
            server.should_exit = True
            thread.join(30)


def doctor(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, str]]:
    """`digest doctor` (in this process: the command's start-up is slow on a loaded machine)
    in `env`: the exit code, and each check's line by the check's name."""
    with monkeypatch.context() as patched:
        for key, value in env.items():
            patched.setenv(key, value)
        reset_settings()
        capsys.readouterr()
        # Time enough for a TLS handshake with the uvicorn thread of this process when the
        # machine is busy (3 s, the default, once ran out in CI).
        code = main(["doctor", "--timeout", "30"])
        out = capsys.readouterr().out
    reset_settings()
    lines = {}
    for line in out.splitlines():
        status, rest = line.split(None, 1)
        name = next(n for n in NAMES if rest.startswith(n))
        lines[name] = f"{status} {rest[len(name) :].strip()}"
    return code, lines


NAMES = ("database", "migrations", "broker", "relay", "public URL", "secret key", "DKIM")


def test_doctor_passes_a_working_deployment(
    deployment: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = doctor(deployment, monkeypatch, capsys)
    assert code == 0, lines
    assert set(lines) == set(NAMES)
    assert all(line.startswith("ok ") for line in lines.values()), lines
    assert "STARTTLS" in lines["relay"]


BROKEN = {
    "database unreachable": (
        {"DIGEST_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"},
        {"database": "FAIL unreachable", "migrations": "FAIL not checked: no database"},
    ),
    "no migrations": ({"DIGEST_DATABASE_URL": "@pg_url"}, {"migrations": "FAIL no migration"}),
    "broker unreachable": ({"DIGEST_BROKER_URL": "@free_redis"}, {"broker": "FAIL redis://"}),
    "relay without STARTTLS": ({"DIGEST_SMTP_PORT": "@plain_relay"}, {"relay": "FAIL no STARTTLS"}),
    "relay down": ({"DIGEST_SMTP_PORT": "@free_port"}, {"relay": "FAIL cannot connect"}),
    "no secret key": (
        {"DIGEST_SECRET_KEY": ""},
        {"secret key": "FAIL DIGEST_SECRET_KEY is not set"},
    ),
    "public URL not https": (
        {"DIGEST_PUBLIC_URL": "@http_url"},
        {"public URL": "FAIL DIGEST_PUBLIC_URL"},
    ),
    "public URL not answering": (
        {"DIGEST_PUBLIC_URL": "@nobody_https"},
        {"public URL": "FAIL https://127.0.0.1:"},
    ),
}


@pytest.mark.parametrize("broken", list(BROKEN))
def test_doctor_finds_each_broken_setup(
    broken: str,
    deployment: dict[str, str],
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    change, expected = BROKEN[broken]
    with SMTPServer() as plain_relay:
        values = {
            "@pg_url": pg_url,  # tables made without Alembic: no revision recorded
            "@free_redis": f"redis://127.0.0.1:{free_port()}/0",
            "@plain_relay": str(plain_relay.port),
            "@free_port": str(free_port()),
            "@http_url": deployment["DIGEST_PUBLIC_URL"].replace("https:", "http:"),
            "@nobody_https": f"https://127.0.0.1:{free_port()}",
        }
        env = {**deployment, **{k: values.get(v, v) for k, v in change.items()}}
        code, lines = doctor(env, monkeypatch, capsys)
    assert code == 1, lines
    for name, said in expected.items():
        status, fragment = said.split(" ", 1)
        assert lines[name].startswith(status) and fragment in lines[name], (name, lines[name])
    # Only what was broken fails.
    failing = {name for name, line in lines.items() if line.startswith("FAIL")}
    assert failing == set(expected), lines

"""/healthz says the process is alive; /readyz answers only while the database (and Redis,
when configured) can be reached. PostgreSQL is made unreachable through a TCP proxy the test
stops and starts: the machine's server keeps running for the other tests."""

from __future__ import annotations

from fastapi.testclient import TestClient

from digest.config import Settings
from digest.web.app import create_app
from tests.processes import wait_until
from tests.smtp_server import free_port
from tests.tcp_proxy import TcpProxy


def _via(pg_url: str, port: int) -> str:
    """pg_url with the proxy's port in place of PostgreSQL's."""
    return pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")


def test_readyz_fails_while_postgresql_is_unreachable_and_recovers(
    pg_url: str, redis_url: str
) -> None:
    with TcpProxy(5432) as proxy:
        settings = Settings(database_url=_via(pg_url, proxy.port), broker_url=redis_url)
        client = TestClient(create_app(settings))
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ok", "database": "ok", "broker": "ok"}

        proxy.stop()
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json() == {"status": "error", "database": "unreachable", "broker": "ok"}
        # Alive all the same: a restart would not bring the database back.
        assert client.get("/healthz").status_code == 200

        proxy.start()
        wait_until(lambda: client.get("/readyz").status_code == 200, 30, 0.2, "/readyz back")
        assert client.get("/readyz").json()["database"] == "ok"


def test_readyz_fails_while_the_broker_is_unreachable(pg_url: str) -> None:
    settings = Settings(database_url=pg_url, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    client = TestClient(create_app(settings))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "error", "database": "ok", "broker": "unreachable"}
    assert client.get("/healthz").json() == {"status": "ok"}

"""The app's edges that need no store: health when the database is down, forged links."""

from __future__ import annotations

from fastapi.testclient import TestClient

from digest.config import Settings
from digest.web.app import create_app
from tests.helpers import token


def test_readyz_is_503_when_the_database_is_unreachable_healthz_200() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    client = TestClient(create_app(settings))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_a_forged_link_is_refused_before_the_database_is_asked() -> None:
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    client = TestClient(create_app(settings))
    for method in ("get", "post"):
        response = getattr(client, method)("/u/forged.token")
        assert response.status_code == 400
        assert "This link doesn’t work" in response.text
    assert client.get("/static/web.css").status_code == 200
    assert client.get("/static/web.css").headers.get("cache-control") != "no-store"


def test_a_failing_database_is_a_500_page_not_a_traceback() -> None:
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    response = client.get(f"/u/{token('unsubscribe', 1)}")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert "Traceback" not in response.text and "psycopg" not in response.text

"""The editor's and the API's defences on both stores: CSRF tokens bound to the browser, the
Origin checked against the public URL, throttled and logged sign-ins, numbers past 64 bits,
JSON errors under /api, and the OpenAPI document for the admin only."""

from __future__ import annotations

import hashlib
import logging
import re

import pytest
import redis
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session

from digest.config import reset_settings
from digest.models import Issue
from digest.web.app import create_app
from tests.integration.test_editor_api import API, PASSWORD, Seeded, basic, order, seed_issue

BIG = 2**64
AUTH = basic()


@pytest.fixture
def seeded(session: Session) -> Seeded:
    return seed_issue(session)


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_ADMIN_PASSWORD", PASSWORD)
    reset_settings()


def browser(**kwargs: object) -> TestClient:
    return TestClient(create_app(), follow_redirects=False, **kwargs)  # type: ignore[arg-type]


def form_token(client: TestClient, issue_id: int, **kwargs: object) -> str:
    page = client.get(f"/editor/issues/{issue_id}", **kwargs)  # type: ignore[arg-type]
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


# CSRF ----------------------------------------------------------------------------------------


def test_the_form_token_is_random_per_browser_not_from_the_password(
    admin: None, session: Session, db_url: str, seeded: Seeded
) -> None:
    path = f"/editor/issues/{seeded.issue_id}/items/{seeded.item_ids[0]}/drop"
    alice, bob = browser(headers=AUTH), browser(headers=AUTH)
    alice_token, bob_token = form_token(alice, seeded.issue_id), form_token(bob, seeded.issue_id)
    assert alice_token != bob_token
    assert len(alice_token) >= 32
    # The same browser keeps its token from page to page.
    assert form_token(alice, seeded.issue_id) == alice_token
    cookie = alice.get("/editor/lists").headers.get("set-cookie")
    assert cookie is None  # already set: not sent again

    # Derived from the password as before (a signed hash prefix): worthless now.
    old = URLSafeTimedSerializer("test-secret", salt="digest.editor.csrf").dumps(
        hashlib.sha256(PASSWORD.encode()).hexdigest()[:16]
    )
    # Bob's token in Alice's browser, Alice's with no cookie at all: refused.
    stranger = browser(headers=AUTH)
    for client, token in ((alice, old), (alice, bob_token), (stranger, alice_token)):
        response = client.post(path, data={"csrf": token})
        assert response.status_code == 403, response.text
    assert order(session, seeded.issue_id) == seeded.item_ids

    done = alice.post(path, data={"csrf": alice_token})
    assert done.status_code == 303
    assert order(session, seeded.issue_id) == seeded.item_ids[1:]


def test_the_cookie_is_httponly_strict_and_secure_over_https(
    admin: None, monkeypatch: pytest.MonkeyPatch, seeded: Seeded
) -> None:
    head = browser(headers=AUTH).get("/editor/issues").headers["set-cookie"]
    assert head.startswith("digest_csrf=")
    attributes = {a.strip().lower() for a in head.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes

    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://digest.example.org")
    reset_settings()
    head = browser(headers=AUTH).get("/editor/issues").headers["set-cookie"]
    # __Host-: only a Secure cookie of this very host on Path=/, never one a subdomain set.
    assert head.startswith("__Host-digest_csrf=")
    attributes = {a.strip().lower() for a in head.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", "secure"} <= attributes


def test_origin_is_the_public_urls_not_the_host_header(
    admin: None, monkeypatch: pytest.MonkeyPatch, session: Session, db_url: str, seeded: Seeded
) -> None:
    # Behind a TLS proxy: the browser is on https://digest.example.org, the app is reached as
    # http://web:8000 (the Host the proxy sends upstream).
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://digest.example.org/")
    reset_settings()
    client = browser(base_url="http://web:8000", headers=AUTH)
    page = client.get(f"/editor/issues/{seeded.issue_id}")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    cookie = {"Cookie": f"__Host-digest_csrf={token.group(1)}"}
    path = f"/editor/issues/{seeded.issue_id}/items/{seeded.item_ids[0]}/drop"
    for foreign in (
        "https://evil.example",
        "http://digest.example.org",  # another scheme is another origin
        "https://digest.example.org:8443",
        "https://digest.example.org.evil.example",
        "http://web:8000",  # the Host header's origin is not the public one
    ):
        refused = client.post(
            path, data={"csrf": token.group(1)}, headers=cookie | {"Origin": foreign}
        )
        assert refused.status_code == 403, foreign
        assert "another site" in refused.text
    assert order(session, seeded.issue_id) == seeded.item_ids

    for origin in ("https://digest.example.org", "https://DIGEST.example.org:443"):
        accepted = client.post(
            f"/editor/issues/{seeded.issue_id}/edit",
            data={"csrf": token.group(1), "subject": f"Via the proxy {origin[-3:]}"},
            headers=cookie | {"Origin": origin},
        )
        assert accepted.status_code == 303, accepted.text
    session.expire_all()
    assert session.get(Issue, seeded.issue_id).subject == "Via the proxy 443"


# Sign-in throttling --------------------------------------------------------------------------


def test_failed_sign_ins_are_throttled_per_address_and_logged(
    admin: None, seeded: Seeded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="digest.web.auth")
    app = create_app()
    guesser = TestClient(app, client=("198.51.100.7", 40000))
    for i in range(5):
        response = guesser.get("/api/issues", headers=basic(f"guess-{i}"))
        assert response.status_code == 401
    locked = guesser.get("/api/issues", headers=basic())  # the right password: still locked
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/json"
    assert 0 < int(locked.headers["retry-after"]) <= 30
    assert "try again" in locked.json()["detail"]
    page = guesser.get("/editor/issues", headers=basic())
    assert page.status_code == 429 and page.headers["content-type"].startswith("text/html")
    assert "Too many failed sign-ins" in page.text and "retry-after" in page.headers

    # Another address is not locked by this one's guesses.
    other = TestClient(app, client=("203.0.113.9", 40000))
    assert other.get("/api/issues", headers=basic()).status_code == 200
    assert other.get("/api/issues", headers=basic()).status_code == 200

    text = caplog.text
    failures = [r for r in caplog.records if r.getMessage().startswith("failed sign-in")]
    assert len(failures) == 5
    assert "'admin' from 198.51.100.7" in failures[0].getMessage()
    assert "locked out" in text
    successes = [r for r in caplog.records if r.getMessage().startswith("signed in")]
    assert [r.getMessage() for r in successes] == ["signed in as 'admin' from 203.0.113.9"]
    assert PASSWORD not in text and "guess-" not in text  # no password, right or wrong


def test_a_user_name_guessed_from_many_addresses_is_locked(admin: None, seeded: Seeded) -> None:
    app = create_app()
    for i in range(10):
        client = TestClient(app, client=(f"192.0.2.{i + 1}", 40000))
        assert client.get("/api/issues", headers=basic("wrong")).status_code == 401
    fresh = TestClient(app, client=("192.0.2.200", 40000))
    assert fresh.get("/api/issues", headers=basic()).status_code == 429
    # Another name from that address is not locked by it.
    response = fresh.get("/api/issues", headers=basic(user="root"))
    assert response.status_code == 401


def test_the_lock_is_shared_through_redis(
    admin: None, redis_url: str, monkeypatch: pytest.MonkeyPatch, seeded: Seeded
) -> None:
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("digest:signin:*"):
        client.delete(key)
    monkeypatch.setenv("DIGEST_RATE_LIMIT_REDIS_URL", redis_url)
    reset_settings()
    one, two = create_app(), create_app()  # two web processes
    for _ in range(5):
        guess = TestClient(one, client=("198.51.100.8", 1)).get("/api/issues", headers=basic("x"))
        assert guess.status_code == 401
    assert any(client.scan_iter("digest:signin:addr:*"))
    locked = TestClient(two, client=("198.51.100.8", 1)).get("/api/issues", headers=basic())
    assert locked.status_code == 429


# Numbers past 64 bits, and JSON errors under /api ---------------------------------------------


def test_ids_past_64_bits_are_4xx_json_under_api(admin: None, seeded: Seeded) -> None:
    client = browser(raise_server_exceptions=False)
    url = f"/api/issues/{seeded.issue_id}"
    item = seeded.item_ids[0]
    for method, path, body, status in (
        ("GET", f"/api/issues/{BIG}", None, 422),
        ("GET", f"/api/issues/{-BIG}", None, 422),
        ("GET", "/api/issues/0", None, 422),
        ("GET", "/api/issues/-1", None, 422),
        ("GET", f"/api/issues/{BIG}/preview", None, 422),
        ("GET", f"/api/issues?offset={BIG}", None, 422),
        ("GET", f"/api/issues?limit={BIG}", None, 422),
        ("GET", f"/api/issues?list={BIG}", None, 404),
        ("GET", "/api/issues?list=%C2%B2", None, 422),  # "²": a digit to str.isdigit only
        ("POST", f"/api/lists/{BIG}/compose", None, 404),
        ("POST", f"{url}/items/{BIG}/move", {"position": 0}, 422),
        ("POST", f"{url}/items/{item}/move", {"position": BIG}, 422),
        ("DELETE", f"{url}/items/{BIG}", None, 422),
        ("POST", f"/api/issues/{BIG}/approve", None, 422),
    ):
        response = client.request(method, path, json=body, headers=API)
        assert response.status_code == status, (method, path, response.text[:200])
        assert response.headers["content-type"] == "application/json", path
        assert response.json()["detail"], path


def test_ids_past_64_bits_are_4xx_pages_in_the_editor(
    admin: None, session: Session, db_url: str, seeded: Seeded
) -> None:
    client = browser(raise_server_exceptions=False, headers=AUTH)
    token = form_token(client, seeded.issue_id)
    base = f"/editor/issues/{seeded.issue_id}"
    for method, path, data in (
        ("GET", f"/editor/issues/{BIG}", None),
        ("GET", "/editor/issues/0", None),
        ("GET", f"/editor/issues/{BIG}/preview", None),
        ("GET", f"{base}?n={BIG}", None),
        ("POST", f"{base}/items/{BIG}/move", {"position": "0"}),
        ("POST", f"{base}/items/{seeded.item_ids[0]}/move", {"position": str(BIG)}),
        ("POST", f"{base}/items/{BIG}/drop", {}),
        ("POST", f"/editor/issues/{BIG}/approve", {}),
        ("POST", f"/editor/lists/{BIG}/compose", {}),
    ):
        data = None if data is None else {"csrf": token, **data}
        response = client.request(method, path, data=data)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert response.headers["content-type"].startswith("text/html"), path
        assert "<!doctype html>" in response.text.lower()
    assert order(session, seeded.issue_id) == seeded.item_ids


def test_every_error_under_api_is_json(
    admin: None, monkeypatch: pytest.MonkeyPatch, seeded: Seeded
) -> None:
    client = browser()
    for method, path, status in (
        ("GET", "/api/no-such-thing", 404),
        ("GET", "/api", 404),
        ("PUT", "/api/issues", 405),
        ("GET", "/api/issues/abc", 422),
        ("POST", f"/api/issues/{seeded.issue_id}/approve", 403),  # no X-Requested-With
    ):
        response = client.request(method, path, headers=AUTH)
        assert response.status_code == status, path
        assert response.headers["content-type"] == "application/json", path
        assert isinstance(response.json()["detail"], str)
    assert "GET" in client.put("/api/issues", headers=AUTH).headers["allow"]

    # Public pages keep their pages.
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert client.put("/u/token").headers["content-type"].startswith("text/html")

    # The feature off: the API's 404 is JSON too.
    monkeypatch.delenv("DIGEST_ADMIN_PASSWORD")
    reset_settings()
    off = browser().get("/api/issues", headers=AUTH)
    assert off.status_code == 404 and off.json() == {"detail": "Not Found"}


def test_a_server_error_under_api_is_json_and_says_nothing_inside(
    admin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 1 on loopback: nothing listens; every query fails.
    monkeypatch.setenv("DIGEST_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    reset_settings()
    client = browser(raise_server_exceptions=False)
    response = client.get("/api/issues", headers=API)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert "psycopg" not in response.text and "Traceback" not in response.text
    assert response.json()["detail"]
    page = client.get("/editor/issues", headers=AUTH)
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")


# The OpenAPI document -------------------------------------------------------------------------


def test_the_openapi_document_is_for_the_admin_only(
    admin: None, monkeypatch: pytest.MonkeyPatch, seeded: Seeded
) -> None:
    client = browser()
    assert client.get("/api/openapi.json").status_code == 401
    assert client.get("/api/openapi.json", headers=basic("wrong")).status_code == 401
    document = client.get("/api/openapi.json", headers=AUTH)
    assert document.status_code == 200
    schema = document.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/issues/{issue_id}" in schema["paths"]
    assert all(path.startswith("/api/") for path in schema["paths"])
    assert "/api/openapi.json" not in schema["paths"]
    for path in ("/openapi.json", "/docs", "/redoc", "/api/docs"):
        assert client.get(path, headers=AUTH).status_code == 404, path

    monkeypatch.delenv("DIGEST_ADMIN_PASSWORD")
    reset_settings()
    assert browser().get("/api/openapi.json", headers=AUTH).status_code == 404

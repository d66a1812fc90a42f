"""The editor's and the API's defences on both stores: CSRF tokens bound to the session, the
Origin checked against the public URL, throttled and logged sign-ins, numbers past 64 bits,
JSON errors under /api/v1, and the OpenAPI document for signed-in users only."""

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
from digest.models import Issue, Role
from digest.web.app import create_app
from tests.accounts import ADMIN, PASSWORD, bearer, grant, sign_in, signed_in
from tests.integration.test_editor_api import API, Seeded, order, seed_issue

BIG = 2**64


@pytest.fixture
def seeded(session: Session) -> Seeded:
    return seed_issue(session)


@pytest.fixture
def admin(db_url: str) -> None:
    grant(db_url)


def browser(**kwargs: object) -> TestClient:
    return TestClient(create_app(), follow_redirects=False, **kwargs)  # type: ignore[arg-type]


def signed(**kwargs: object) -> TestClient:
    return signed_in(browser(**kwargs))


def form_token(client: TestClient, issue_id: int, **kwargs: object) -> str:
    page = client.get(f"/editor/issues/{issue_id}", **kwargs)  # type: ignore[arg-type]
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


# CSRF ----------------------------------------------------------------------------------------


def test_the_form_token_is_random_per_session_not_from_the_password(
    admin: None, session: Session, db_url: str, seeded: Seeded
) -> None:
    path = f"/editor/issues/{seeded.issue_id}/items/{seeded.item_ids[0]}/drop"
    alice, bob = signed(), signed()
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
    stranger = signed()
    for client, token in ((alice, old), (alice, bob_token), (stranger, alice_token)):
        response = client.post(path, data={"csrf": token})
        assert response.status_code == 403, response.text
    assert order(session, seeded.issue_id) == seeded.item_ids

    done = alice.post(path, data={"csrf": alice_token})
    assert done.status_code == 303
    assert order(session, seeded.issue_id) == seeded.item_ids[1:]


def test_the_cookies_are_httponly_samesite_and_secure_over_https(
    admin: None, monkeypatch: pytest.MonkeyPatch, seeded: Seeded
) -> None:
    client = browser()
    head = client.get("/editor/signin").headers["set-cookie"]  # the sign-in form's token
    assert head.startswith("digest_csrf=")
    attributes = {a.strip().lower() for a in head.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes
    head = sign_in(client).headers["set-cookie"]  # the session's
    assert head.startswith("digest_session=")
    attributes = {a.strip().lower() for a in head.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    assert "secure" not in attributes

    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://digest.example.org")
    reset_settings()
    client = browser(base_url="https://digest.example.org")
    head = client.get("/editor/signin").headers["set-cookie"]
    # __Host-: only a Secure cookie of this very host on Path=/, never one a subdomain set.
    assert head.startswith("__Host-digest_csrf=")
    attributes = {a.strip().lower() for a in head.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", "secure"} <= attributes
    head = sign_in(client).headers["set-cookie"]
    assert head.startswith("__Host-digest_session=")
    attributes = {a.strip().lower() for a in head.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/", "secure"} <= attributes
    assert client.get("/editor/issues").status_code == 200

    # Signing out ends the session on the server: the old cookie opens nothing.
    cookie = client.cookies["__Host-digest_session"]
    page = client.get("/editor/issues").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    assert client.post("/editor/signout", data={"csrf": "forged"}).status_code == 403
    out = client.post("/editor/signout", data={"csrf": token.group(1)})
    assert out.status_code == 303 and out.headers["location"] == "/editor/signin?out=1"
    replay = browser(base_url="https://digest.example.org")
    replay.cookies.set("__Host-digest_session", cookie)
    assert replay.get("/editor/issues").status_code == 303


def test_origin_is_the_public_urls_not_the_host_header(
    admin: None, monkeypatch: pytest.MonkeyPatch, session: Session, db_url: str, seeded: Seeded
) -> None:
    # Behind a TLS proxy: the browser is on https://digest.example.org, the app is reached as
    # http://web:8000 (the Host the proxy sends upstream).
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://digest.example.org/")
    reset_settings()
    client = signed(base_url="https://web:8000")
    page = client.get(f"/editor/issues/{seeded.issue_id}")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    cookie: dict[str, str] = {}
    path = f"/editor/issues/{seeded.issue_id}/items/{seeded.item_ids[0]}/drop"
    for foreign in (
        "https://evil.example",
        "http://digest.example.org",  # another scheme is another origin
        "https://digest.example.org:8443",
        "https://digest.example.org.evil.example",
        "https://web:8000",  # the Host header's origin is not the public one
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
    caplog.set_level(logging.INFO, logger="digest.web.signin")
    app = create_app()
    guesser = TestClient(app, client=("198.51.100.7", 40000), follow_redirects=False)
    for i in range(5):
        response = sign_in(guesser, password=f"guess-{i}")
        assert response.status_code == 401
    locked = sign_in(guesser)  # the right password: still locked
    assert locked.status_code == 429 and locked.headers["content-type"].startswith("text/html")
    assert 0 < int(locked.headers["retry-after"]) <= 30
    assert "Too many failed sign-ins" in locked.text and "try again" in locked.text
    assert guesser.get("/editor/issues").status_code == 303  # not signed in

    # Another address is not locked by this one's guesses.
    other = TestClient(app, client=("203.0.113.9", 40000), follow_redirects=False)
    assert sign_in(other).status_code == 303
    assert sign_in(other).status_code == 303

    text = caplog.text
    failures = [r for r in caplog.records if r.getMessage().startswith("failed sign-in")]
    assert len(failures) == 5
    assert f"'{ADMIN}' from 198.51.100.7" in failures[0].getMessage()
    assert "locked out" in text
    successes = [r for r in caplog.records if r.getMessage().startswith("signed in")]
    assert [r.getMessage() for r in successes] == [f"signed in as '{ADMIN}' from 203.0.113.9"]
    assert PASSWORD not in text and "guess-" not in text  # no password, right or wrong


def test_a_user_name_guessed_from_many_addresses_is_locked(admin: None, seeded: Seeded) -> None:
    app = create_app()
    for i in range(10):
        client = TestClient(app, client=(f"192.0.2.{i + 1}", 40000), follow_redirects=False)
        assert sign_in(client, password="wrong password").status_code == 401
    fresh = TestClient(app, client=("192.0.2.200", 40000), follow_redirects=False)
    assert sign_in(fresh).status_code == 429
    # Another name from that address is not locked by it.
    assert sign_in(fresh, email="root@example.org").status_code == 401


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
        guess = sign_in(TestClient(one, client=("198.51.100.8", 1)), password="x" * 12)
        assert guess.status_code == 401
    assert any(client.scan_iter("digest:signin:addr:*"))
    locked = sign_in(TestClient(two, client=("198.51.100.8", 1)))
    assert locked.status_code == 429


# Numbers past 64 bits, and JSON errors under /api/v1 ---------------------------------------------


def test_ids_past_64_bits_are_4xx_json_under_api(admin: None, seeded: Seeded) -> None:
    client = browser(raise_server_exceptions=False)
    url = f"/api/v1/issues/{seeded.issue_id}"
    item = seeded.item_ids[0]
    for method, path, body, status in (
        ("GET", f"/api/v1/issues/{BIG}", None, 422),
        ("GET", f"/api/v1/issues/{-BIG}", None, 422),
        ("GET", "/api/v1/issues/0", None, 422),
        ("GET", "/api/v1/issues/-1", None, 422),
        ("GET", f"/api/v1/issues/{BIG}/preview", None, 422),
        ("GET", f"/api/v1/issues?offset={BIG}", None, 422),
        ("GET", f"/api/v1/issues?limit={BIG}", None, 422),
        ("GET", f"/api/v1/issues?list={BIG}", None, 404),
        ("GET", "/api/v1/issues?list=%C2%B2", None, 422),  # "²": a digit to str.isdigit only
        ("POST", f"/api/v1/lists/{BIG}/compose", None, 404),
        ("POST", f"{url}/items/{BIG}/move", {"position": 0}, 422),
        ("POST", f"{url}/items/{item}/move", {"position": BIG}, 422),
        ("DELETE", f"{url}/items/{BIG}", None, 422),
        ("POST", f"/api/v1/issues/{BIG}/approve", None, 422),
    ):
        response = client.request(method, path, json=body, headers=API)
        assert response.status_code == status, (method, path, response.text[:200])
        assert response.headers["content-type"] == "application/json", path
        assert response.json()["detail"], path


def test_ids_past_64_bits_are_4xx_pages_in_the_editor(
    admin: None, session: Session, db_url: str, seeded: Seeded
) -> None:
    client = signed(raise_server_exceptions=False)
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
    admin: None, db_url: str, monkeypatch: pytest.MonkeyPatch, seeded: Seeded
) -> None:
    grant(db_url, Role.VIEWER)
    client = browser()
    for method, path, status in (
        ("GET", "/api/v1/no-such-thing", 404),
        ("GET", "/api", 404),
        ("PUT", "/api/v1/issues", 405),
        ("GET", "/api/v1/issues/abc", 422),
    ):
        response = client.request(method, path, headers=bearer())
        assert response.status_code == status, path
        assert response.headers["content-type"] == "application/json", path
        assert isinstance(response.json()["detail"], str)
    assert "GET" in client.put("/api/v1/issues", headers=bearer()).headers["allow"]
    for headers, status in (({}, 401), (bearer(Role.VIEWER), 403)):  # no user; a role too low
        response = client.post(f"/api/v1/issues/{seeded.issue_id}/approve", headers=headers)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert isinstance(response.json()["detail"], str)

    # Public pages keep their pages.
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert client.put("/u/token").headers["content-type"].startswith("text/html")


def test_a_server_error_under_api_is_json_and_says_nothing_inside(
    admin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 1 on loopback: nothing listens; every query fails.
    monkeypatch.setenv("DIGEST_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    reset_settings()
    client = browser(raise_server_exceptions=False)
    response = client.get("/api/v1/issues", headers=API)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert "psycopg" not in response.text and "Traceback" not in response.text
    assert response.json()["detail"]
    page = client.get("/editor/issues", headers={"Cookie": "digest_session=x"})
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")


# The OpenAPI document -------------------------------------------------------------------------


def test_the_openapi_document_is_for_signed_in_users_only(
    admin: None, db_url: str, seeded: Seeded
) -> None:
    grant(db_url, Role.VIEWER)
    client = browser()
    assert client.get("/api/v1/openapi.json").status_code == 401
    wrong = {"Authorization": "Bearer dgt_wrong"}
    assert client.get("/api/v1/openapi.json", headers=wrong).status_code == 401
    assert client.get("/api/v1/openapi.json", headers=bearer(Role.VIEWER)).status_code == 200
    document = client.get("/api/v1/openapi.json", headers=bearer())
    assert document.status_code == 200
    schema = document.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/issues/{issue_id}" in schema["paths"]
    assert all(path.startswith("/api/v1/") for path in schema["paths"])
    assert "/api/v1/openapi.json" not in schema["paths"]
    for path in ("/openapi.json", "/docs", "/redoc", "/api/v1/docs"):
        assert client.get(path, headers=bearer()).status_code == 404, path

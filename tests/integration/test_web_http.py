"""The one-click endpoint over real HTTP: uvicorn on 127.0.0.1, raw requests, racing clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from digest.models import Event, Subscription
from digest.web.app import create_app
from tests.helpers import token
from tests.integration.test_web_pages import seed


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free port of 127.0.0.1; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def raw_post(base_url: str, path: str, content_type: str, body: bytes) -> tuple[int, bytes]:
    """A POST with nothing but the headers RFC 8058 says a mail provider sends: no cookie,
    no user agent, no origin. Returns the status code and the raw response head and body."""
    host, port = urlsplit(base_url).hostname, urlsplit(base_url).port
    assert host is not None and port is not None
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    return int(response.split(b" ", 2)[1]), response


def test_one_click_with_bare_requests_both_encodings(db_url, session) -> None:
    seeded = seed(session)
    path = f"/u/{token('unsubscribe', seeded.subscription_id)}"
    boundary = "----digest-test-boundary"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    ).encode()
    with live_server(create_app()) as base_url:
        status, response = raw_post(
            base_url, path, "application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click"
        )
        assert status == 200, response
        head = response.split(b"\r\n\r\n", 1)[0].lower()
        assert b"\r\nlocation:" not in head and b"\r\nset-cookie:" not in head
        session.expire_all()
        assert session.get(Subscription, seeded.subscription_id).status == "unsubscribed"

        # Again, as form-data this time: still a 200, still one event.
        status, response = raw_post(
            base_url, path, f"multipart/form-data; boundary={boundary}", multipart
        )
        assert status == 200, response
    kinds = list(session.scalars(select(Event.detail).where(Event.kind == "unsubscribed")))
    assert kinds == [{"via": "one-click"}]


def test_racing_one_click_posts_write_one_event(db_url, session) -> None:
    """A provider's one-click and the subscriber's own click can arrive together."""
    seeded = seed(session)
    path = f"/u/{token('unsubscribe', seeded.subscription_id)}"
    with live_server(create_app()) as base_url, ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda _: raw_post(
                    base_url,
                    path,
                    "application/x-www-form-urlencoded",
                    b"List-Unsubscribe=One-Click",
                )[0],
                range(16),
            )
        )
    assert statuses == [200] * 16
    session.expire_all()
    events = list(session.scalars(select(Event).where(Event.kind == "unsubscribed")))
    assert len(events) == 1
    assert session.get(Subscription, seeded.subscription_id).status == "unsubscribed"

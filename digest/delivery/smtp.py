"""The SMTP transport: several pipelined sessions at once, kept open across batches.

The sessions live on an event loop in a thread of their own, so the caller's thread writes the
ledger while the next messages are already on the wire. Per message: 2xx sent, 4xx retry,
5xx failed; a broken session means retry for its message in flight, then a fresh session.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from digest.config import Settings, get_settings
from digest.delivery.recipient import Recipient
from digest.delivery.smtp_client import SmtpConfig, SmtpConnection, SmtpError
from digest.delivery.transports import Render, SendResult

IDLE_CHECK_SECONDS = 2.0  # an idle session older than this is checked with NOOP before use
WAIT_SECONDS = 0.2  # the longest the caller waits for results before getting an empty chunk

_SESSION_ERRORS = (OSError, SmtpError, TimeoutError, asyncio.IncompleteReadError)


@dataclass
class _BatchState:
    jobs: deque[Recipient]
    envelope_from: str
    render: Render
    report: Any  # Callable[[SendResult | None], None]
    last_error: str = ""


class SmtpTransport:
    """Send batches over up to `connections` reused SMTP sessions. One batch at a time."""

    def __init__(self, config: SmtpConfig, connections: int = 4) -> None:
        self.config = config
        self.connections = max(1, connections)
        self._idle: list[SmtpConnection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> SmtpTransport:
        s = settings or get_settings()
        config = SmtpConfig(
            host=s.smtp_host,
            port=s.smtp_port,
            security=s.smtp_security,
            username=s.smtp_username,
            password=s.smtp_password,
            timeout=s.smtp_timeout,
        )
        return cls(replace(config, **overrides), connections=s.smtp_connections)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="smtp-transport", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def send(
        self, envelope_from: str, batch: Sequence[Recipient], render: Render
    ) -> Iterator[list[SendResult]]:
        results: queue.SimpleQueue[SendResult | None] = queue.SimpleQueue()
        state = _BatchState(deque(batch), envelope_from, render, results.put)
        future: Future[None] = asyncio.run_coroutine_threadsafe(
            self._send_all(state), self._ensure_loop()
        )
        finished = False
        try:
            while not finished:
                try:
                    item = results.get(timeout=WAIT_SECONDS)
                except queue.Empty:
                    yield []
                    continue
                chunk: list[SendResult] = []
                while True:
                    if item is None:
                        finished = True
                        break
                    chunk.append(item)
                    try:
                        item = results.get_nowait()
                    except queue.Empty:
                        break
                if chunk:
                    yield chunk
            future.result()
        finally:
            if not finished:
                future.cancel()  # the caller gave up; unreported messages keep their lease

    async def _send_all(self, state: _BatchState) -> None:
        try:
            workers = min(self.connections, len(state.jobs))
            await asyncio.gather(*(self._worker(state) for _ in range(workers)))
            # Every session failed to open: what is left waits for a retry.
            while state.jobs:
                recipient = state.jobs.popleft()
                detail = f"no SMTP session: {state.last_error or 'unknown error'}"
                state.report(SendResult(recipient.delivery_id, "retry", detail, True))
        finally:
            state.report(None)

    async def _session(self, state: _BatchState) -> SmtpConnection | None:
        """An open session: an idle one that still answers, else a new one (None: failed)."""
        while self._idle:
            conn = self._idle.pop()
            if time.monotonic() - conn.last_used < IDLE_CHECK_SECONDS or await conn.noop():
                return conn
            conn.abort()
        conn = SmtpConnection(self.config)
        try:
            await conn.open()
        except _SESSION_ERRORS as exc:
            state.last_error = f"{type(exc).__name__}: {exc}"
            return None
        return conn

    async def _worker(self, state: _BatchState) -> None:
        conn: SmtpConnection | None = None
        try:
            while state.jobs:
                recipient = state.jobs.popleft()
                if conn is None or not conn.usable:
                    if conn is not None:
                        await conn.quit()
                    conn = await self._session(state)
                    if conn is None:
                        # Leave the job to sessions that work (a server may cap sessions).
                        state.jobs.appendleft(recipient)
                        return
                try:
                    data = state.render(recipient)
                except Exception as exc:  # a bug in the message, not in the session
                    state.report(SendResult(recipient.delivery_id, "retry", f"render: {exc}"))
                    continue
                try:
                    result = await conn.send_message(state.envelope_from, recipient.email, data)
                except _SESSION_ERRORS as exc:
                    conn.abort()
                    conn = None
                    detail = f"session lost: {type(exc).__name__}: {exc}"
                    state.report(SendResult(recipient.delivery_id, "retry", detail, True))
                    continue
                state.report(
                    SendResult(
                        recipient.delivery_id, result.outcome, result.detail, result.transport_error
                    )
                )
        finally:
            if conn is not None:
                if conn.usable:
                    self._idle.append(conn)
                else:
                    conn.abort()

    async def _quit_all(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.quit() for conn in idle))

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._quit_all(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

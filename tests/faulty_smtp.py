"""SMTP servers for the crash tests (aiosmtpd on 127.0.0.1): one that records each copy's
Message-ID, one that refuses one message in ten with a 421 or 451, and one that can be
started late or stopped and started again on the same port (a server that is down)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from tests.smtp_server import BoundController, free_port

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)


@dataclass
class Copy:
    rcpt: str
    message_id: str
    at: float = 0.0  # when the server took it (time.time(), before its 250)


@dataclass
class CopyLog:
    """Every accepted copy in arrival order: who got it and its Message-ID."""

    copies: list[Copy] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rcpts: list[str], data: bytes) -> None:
        head = data.split(b"\r\n\r\n", 1)[0]
        found = _MESSAGE_ID.search(head)
        message_id = found.group(1).decode() if found else ""
        at = time.time()
        with self.lock:
            self.copies.extend(Copy(r, message_id, at) for r in rcpts)

    def __len__(self) -> int:
        return len(self.copies)

    def snapshot(self) -> list[Copy]:
        with self.lock:
            return list(self.copies)

    def per_recipient(self) -> Counter[str]:
        return Counter(c.rcpt for c in self.snapshot())

    def duplicates(self) -> dict[str, list[str]]:
        """Recipients served more than once, with the Message-IDs of their copies in order."""
        ids: dict[str, list[str]] = {}
        for c in self.snapshot():
            ids.setdefault(c.rcpt, []).append(c.message_id)
        return {rcpt: mids for rcpt, mids in ids.items() if len(mids) > 1}


@dataclass
class CopyHandler:
    """Accepts everything, keeps only who got which Message-ID (cheap at thousands).
    While `held` is set, no DATA is answered: senders stall mid-batch, holding their leases.
    `waiting_ports()` names the client ports of the sessions stalled so right now."""

    log: CopyLog = field(default_factory=CopyLog)
    quits: int = 0  # sessions the client closed politely
    held: threading.Event = field(default_factory=threading.Event)
    _waiting: Counter[int] = field(default_factory=Counter)  # client port -> DATA held
    _waiting_lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.held.is_set():
            port = int(session.peer[1])
            with self._waiting_lock:
                self._waiting[port] += 1
            try:
                while self.held.is_set():
                    await asyncio.sleep(0.005)
            finally:
                with self._waiting_lock:
                    self._waiting[port] -= 1
                    if not self._waiting[port]:
                        del self._waiting[port]
        self.log.add(list(envelope.rcpt_tos), bytes(envelope.content))
        return "250 Message accepted"

    def waiting_ports(self) -> set[int]:
        """Client ports of the sessions whose message was received but not answered (held):
        each client is blocked reading that reply, before it can record the message sent."""
        with self._waiting_lock:
            return set(self._waiting)


@dataclass
class FlakyHandler(CopyHandler):
    """Refuses every `every`-th first attempt of a recipient: alternately 421 at RCPT (the
    server is closing the session) and 451 after DATA (local error); retries are accepted."""

    every: int = 10
    seen: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> reply given
    _first_attempts: int = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address not in self.seen:
            self.seen.add(address)
            self._first_attempts += 1
            if self._first_attempts % self.every == 0:
                if len(self.refused) % 2 == 0:
                    self.refused[address] = "421"
                    return "421 4.3.2 Service shutting down, try again later"
                self.refused[address] = "451"
                envelope.refuse_data = True
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if getattr(envelope, "refuse_data", False):
            return "451 4.3.0 Local error in processing, try again later"
        return await super().handle_DATA(server, session, envelope)


class RestartableSMTPServer:
    """An aiosmtpd server that can be down, come up, go down again, on one port: the first
    start binds port 0 (the system picks a free one, no race); a server asked for its port
    before it ever started (one down at first) reserves a free port instead."""

    def __init__(self, handler: Any, port: int | None = None) -> None:
        self.handler = handler
        self._port = port or 0
        self.controller: Controller | None = None

    @property
    def port(self) -> int:
        if not self._port:
            self._port = free_port()
        return self._port

    def start(self) -> RestartableSMTPServer:
        self.controller = BoundController(self.handler, port=self._port, data_size_limit=0)
        self.controller.start()
        self._port = int(self.controller.port)
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> RestartableSMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

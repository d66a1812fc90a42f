"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), recording every message it accepts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A port nothing listens on now. Racy (another process may take it before it is
    bound): only for what cannot bind port 0 itself, such as redis-server, a server that
    must be down at first, or an address where nothing should answer."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BoundController(Controller):
    """aiosmtpd's Controller on 127.0.0.1, bound to port 0 unless given one: the system
    picks a free port when binding (no race), and `port` says which once started."""

    def __init__(self, handler: Any, port: int = 0, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port, **kwargs)

    def _trigger_server(self) -> None:
        if not self.port and self.server is not None:
            self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str] = field(default_factory=list)  # SMTPUTF8, BODY=8BITMIME, ...


@dataclass
class RecordingHandler:
    """Accepts mail; `reply` may answer a recipient with an error code instead."""

    messages: list[Received] = field(default_factory=list)
    reply: Callable[[str], str | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.reply is not None:
            answer = self.reply(address)
            if answer:
                return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    bytes(envelope.content),
                    list(envelope.mail_options),
                )
            )
        return "250 Message accepted"


class SMTPServer:
    """A recording server; its `port` is known once entered."""

    def __init__(self, handler: RecordingHandler | None = None, **kwargs: Any) -> None:
        self.handler = handler or RecordingHandler()
        self.controller = BoundController(self.handler, data_size_limit=0, **kwargs)

    @property
    def port(self) -> int:
        assert self.controller.port, "the server is not started yet"
        return int(self.controller.port)

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

"""The SMTP client against servers that misbehave on the wire: a malformed or endless reply,
a connection closed mid-reply, replies dribbled a byte at a time, text slipped in ahead of
TLS. Each is a session error (the transport retries the message on a new session), never a
hang or a reply made up from the pieces."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from digest.delivery.smtp_client import MAX_REPLY, SmtpConfig, SmtpConnection, SmtpError

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def talk(script: Script, security: str = "none") -> SmtpConnection:
    """Open a session with a server that runs `script` on its connection."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = SmtpConnection(SmtpConfig(port=port, timeout=10, security=security))  # type: ignore[arg-type]
    try:
        await conn.open()
    finally:
        server.close()
    return conn


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 hello\r\n")
    await reader.readline()  # EHLO


@pytest.mark.parametrize(
    ("after_ehlo", "error"),
    [
        (b"250-x\r\nHELLO there\r\n", "malformed reply"),
        (b"25 short\r\n", "malformed reply"),
        (b"250-x\r\n250-" + b"y" * MAX_REPLY + b"\r\n250 z\r\n", "longer than"),
        (b"250 " + b"y" * (MAX_REPLY + 10), "longer than"),  # and no line end at all
        (b"250-x\r\n250-PIPELI", "closed the connection"),
    ],
)
def test_a_broken_reply_is_a_session_error(after_ehlo: bytes, error: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        writer.write(after_ehlo)
        await writer.drain()

    with pytest.raises(SmtpError, match=error):
        asyncio.run(talk(script))


def test_replies_dribbled_a_byte_at_a_time_are_read_whole() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        for byte in b"250-mx.example.org\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n":
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)
        assert await reader.readline() == b"NOOP\r\n"
        writer.write(b"250 2.0.0 ok\r\n")
        await reader.readline()  # QUIT

    async def check() -> None:
        conn = await talk(script)
        assert conn.extensions == {"pipelining": "", "smtputf8": ""}
        assert await conn.noop()
        await conn.quit()

    asyncio.run(check())


def test_text_sent_ahead_of_tls_is_refused() -> None:
    """A reply injected behind the 220 to STARTTLS would be read as said under TLS."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        writer.write(b"250-x\r\n250 STARTTLS\r\n")
        await reader.readline()  # STARTTLS
        writer.write(b"220 go ahead\r\n250 injected\r\n")
        await writer.drain()
        await reader.read()

    with pytest.raises(SmtpError, match="more than its STARTTLS reply"):
        asyncio.run(talk(script, security="starttls"))

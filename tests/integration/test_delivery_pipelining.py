"""The next message's envelope pipelined behind the previous end of data (RFC 2920), against a
real SMTP server on 127.0.0.1 that answers from a script and notes, at each end of data,
whether the next MAIL FROM was already there: each message costs one round trip, and a
refused recipient, a 4xx or a 421 after the data, or a dropped session mid-round delivers
every other message exactly once, each with its own data."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from digest.delivery.message import build_template
from digest.delivery.recipient import Recipient
from digest.delivery.smtp import SmtpTransport
from digest.delivery.smtp_client import SmtpConfig, SmtpConnection, SmtpError
from digest.delivery.transports import SendResult
from digest.placeholders import Slots
from tests.helpers import signer

TEMPLATE = build_template(
    signer=signer(),
    issue_id=1, subject="s", html_body="<p>news</p>", text_body="news", slots=Slots.new(),
    list_slug="l", list_name="L", from_name="F", from_email="f@example.org",
    public_url="https://x.example.org",
)  # fmt: skip
WAIT_FOR_NEXT = 0.3  # how long the server holds its reply to a dot for the next envelope


@dataclass
class ScriptedServer:
    """SMTP with PIPELINING. `rcpt` and `data` map an address to the reply its RCPT TO, or
    its end of data, gets (once); a data reply of "drop" closes the session unanswered,
    "stall" leaves it unanswered and open, and a 421 closes it after answering."""

    rcpt: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, bytes]] = field(default_factory=list)  # (rcpt, data) accepted
    behind: list[bool] = field(default_factory=list)  # per end of data: next MAIL already in
    sessions: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._session, "127.0.0.1", 0), self.loop
        ).result(10)
        self.server = server
        self.port = int(server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        buf = bytearray()

        async def more(timeout: float | None = None) -> bool:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                return True
            buf.extend(chunk)
            return bool(chunk)

        async def line() -> bytes | None:
            while b"\r\n" not in buf:
                if not await more():
                    return None
            end = buf.index(b"\r\n") + 2
            text = bytes(buf[:end])
            del buf[:end]
            return text

        writer.write(b"220 scripted\r\n")
        rcpts: list[str] = []
        try:
            while (command := await line()) is not None:
                verb = command[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-scripted\r\n250 PIPELINING\r\n")
                elif verb == b"MAIL":
                    rcpts = []
                    writer.write(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    match = re.search(rb"<([^>]*)>", command)
                    address = match.group(1).decode() if match else ""
                    reply = self.rcpt.pop(address, "250 2.1.5 ok")
                    if reply.startswith("250"):
                        rcpts.append(address)
                    writer.write(reply.encode() + b"\r\n")
                elif verb == b"DATA":
                    if not rcpts:
                        writer.write(b"554 5.5.1 no valid recipients\r\n")
                        continue
                    writer.write(b"354 go ahead\r\n")
                    while b"\r\n.\r\n" not in b"\r\n" + buf:
                        if not await more():
                            return
                    end = (b"\r\n" + buf).index(b"\r\n.\r\n")
                    content = bytes(buf[:end])
                    del buf[: end + 3]
                    if b"MAIL FROM" not in buf:
                        await more(WAIT_FOR_NEXT)  # a pipelining client has sent it already
                    self.behind.append(bytes(buf).startswith(b"MAIL FROM"))
                    reply = self.data.pop(rcpts[0], "250 2.0.0 queued")
                    if reply == "drop":
                        return
                    if reply == "stall":  # never answers: reads until the client gives up
                        while await more():
                            pass
                        return
                    if reply.startswith("250"):
                        self.received.extend((r, content) for r in rcpts)
                    writer.write(reply.encode() + b"\r\n")
                    if reply.startswith("421"):
                        return
                elif verb in (b"RSET", b"NOOP"):
                    writer.write(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    return
                else:
                    writer.write(b"500 5.5.2 what\r\n")
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.start()
    yield server
    server.stop()


def recipients(n: int) -> list[Recipient]:
    return [Recipient(i, i, f"r{i}@example.com", f"R {i}") for i in range(n)]


def send(
    port: int, batch: list[Recipient], connections: int = 2, timeout: float = 10
) -> dict[int, SendResult]:
    transport = SmtpTransport(SmtpConfig(port=port, timeout=timeout), connections=connections)
    try:
        results = [
            r
            for chunk in transport.send("b@example.org", batch, TEMPLATE.personalise)
            for r in chunk
        ]
    finally:
        transport.close()
    assert sorted(r.delivery_id for r in results) == [r.delivery_id for r in batch]
    return {r.delivery_id: r for r in results}


def check_received(server: ScriptedServer, expected: list[str]) -> None:
    """Each expected recipient exactly once, and each with its own copy (a desynchronised
    pipeline would give one recipient's data to the next envelope)."""
    assert Counter(rcpt for rcpt, _ in server.received) == Counter(expected)
    for rcpt, content in server.received:
        assert f"\r\nTo: R {rcpt[1:].split('@')[0]} <{rcpt}>\r\n".encode() in content


def test_each_envelope_goes_out_behind_the_previous_data(scripted: ScriptedServer) -> None:
    batch = recipients(30)
    results = send(scripted.port, batch, connections=2)
    assert {r.outcome for r in results.values()} == {"sent"}
    check_received(scripted, [r.email for r in batch])
    # Only each session's last message has no next one to carry.
    assert scripted.behind.count(False) <= 2 and len(scripted.behind) == 30
    assert scripted.sessions == 2


def test_a_refused_recipient_and_4xx_data_mid_pipeline(scripted: ScriptedServer) -> None:
    scripted.rcpt["r5@example.com"] = "550 5.1.1 no such user"
    scripted.rcpt["r6@example.com"] = "451 4.3.0 greylisted"
    scripted.data["r9@example.com"] = "451 4.3.0 try again later"
    scripted.data["r12@example.com"] = "552 5.3.4 message too big"
    batch = recipients(20)
    results = send(scripted.port, batch, connections=2)
    outcomes = {i: results[i].outcome for i in (5, 6, 9, 12)}
    assert outcomes == {5: "failed", 6: "retry", 9: "retry", 12: "failed"}
    assert "550 5.1.1" in results[5].detail and "451 4.3.0" in results[9].detail
    assert all(results[i].outcome == "sent" for i in results if i not in outcomes)
    check_received(scripted, [r.email for r in batch if r.delivery_id not in outcomes])
    assert scripted.sessions == 2  # refusals end a transaction, never the session


@pytest.mark.parametrize("reply", ["421 4.3.2 closing, try later", "drop"])
def test_a_session_ended_after_data_sends_the_pipelined_message_on_a_new_one(
    scripted: ScriptedServer, reply: str
) -> None:
    # r4's end of data is answered 421 (then the session closes) or not at all (dropped),
    # with the next message's envelope already on the wire behind it.
    scripted.data["r4@example.com"] = reply
    batch = recipients(12)
    results = send(scripted.port, batch, connections=1)
    assert results[4].outcome == "retry" and results[4].transport_error
    assert all(results[i].outcome == "sent" for i in results if i != 4)
    check_received(scripted, [r.email for r in batch if r.delivery_id != 4])
    assert scripted.sessions == 2


@pytest.mark.timeout(30)  # without a working timeout the send would wait for ever
def test_a_server_that_stops_answering_times_the_session_out(scripted: ScriptedServer) -> None:
    scripted.data["r3@example.com"] = "stall"
    batch = recipients(8)
    started = time.monotonic()
    results = send(scripted.port, batch, connections=1, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert results[3].outcome == "retry" and "TimeoutError" in results[3].detail
    assert all(results[i].outcome == "sent" for i in results if i != 3)
    check_received(scripted, [r.email for r in batch if r.delivery_id != 3])
    assert scripted.sessions == 2


def test_the_call_after_a_pipelined_envelope_must_be_for_it(scripted: ScriptedServer) -> None:
    async def scenario() -> None:
        conn = SmtpConnection(SmtpConfig(port=scripted.port, timeout=10))
        await conn.open()
        data = TEMPLATE.personalise(recipients(1)[0])
        first = await conn.send_message(
            "b@example.org", "r0@example.com", data, then=("b@example.org", "r1@example.com")
        )
        assert first.outcome == "sent" and conn.ahead
        with pytest.raises(SmtpError, match="not the one pipelined"):
            await conn.send_message("b@example.org", "r2@example.com", data)
        conn.abort()

    asyncio.run(scenario())

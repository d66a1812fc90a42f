"""A lean asyncio SMTP client session: EHLO, STARTTLS or implicit TLS, AUTH, pipelined sends.

smtplib and aiosmtplib cost several round trips per message and a dot-stuffing regex over
every message. Here, when the server offers PIPELINING, a message's MAIL FROM, RCPT TO and
DATA go in one write (RFC 2920), behind the previous message's data when the caller names the
next message in time, then its body, which the template already dot-stuffed. Replies are
parsed as they arrive, straight from the transport's data (no stream reader between).
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal, NamedTuple, cast

from digest.delivery.transports import Outcome
from digest.models import Verdict
from digest.subscribers.classify import classify

Security = Literal["none", "starttls", "tls"]


class SmtpError(Exception):
    """The session failed (refused, dropped, timed out, bad reply): the connection is done."""


class SmtpAuthError(SmtpError):
    """The server refused our credentials or offers no mechanism we speak."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    security: Security = "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    ssl_context: ssl.SSLContext | None = None  # default: the system's trust store
    local_hostname: str | None = None  # the EHLO name; default: this host's name
    auth_mechanism: Literal["PLAIN", "LOGIN"] | None = None  # default: the best offered


class Reply(NamedTuple):  # a tuple: made four times a message, cheaper than a frozen dataclass
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400


class MessageResult(NamedTuple):
    outcome: Outcome
    detail: str
    transport_error: bool = False
    verdict: Verdict = Verdict.HARD  # what a failure says about the address


NO_SMTPUTF8 = "the relay does not offer SMTPUTF8, which this address needs"
# What may not appear in a path between < and >: it would end the command or the path.
_PATH_BREAKERS = re.compile(rb"[\x00-\x20<>\x7f]")


def _classify(stage: str, reply: Reply) -> MessageResult:
    """4xx: try again later; 5xx: failed, with the verdict the policy reads from the
    reply (digest.subscribers.classify: hard, soft, block or ours). A refused sender is our
    problem, not the recipient's, so it retries and counts as a transport error."""
    detail = f"{stage}: {reply}"
    if stage == "MAIL FROM" or reply.code == 421:
        return MessageResult("retry", detail, True)
    if reply.code < 500:
        return MessageResult("retry", detail)
    return MessageResult("failed", detail, verdict=classify(code=reply.code, text=reply.text))


MAX_REPLY = 65536  # bytes of one reply (all its lines): a server sending more is broken
_CODES = {b"%d" % code: code for code in range(200, 600)}  # the reply codes servers send


class _ReplyReader(asyncio.Protocol):
    """The session's protocol: parses the server's replies as data arrives, one Reply per
    reply (a multi-line one joined), and wakes the session when one it waits for is in.

    A reply per data chunk is the usual case (pipelined replies come together), so a
    message costs a wake-up or two, not a stream reader's per-line machinery."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.replies: deque[Reply] = deque()
        self.closed: Exception | None = None  # why no more replies will come
        self._partial = b""  # the start of a line whose end has not arrived
        self._lines: list[str] = []  # the lines so far of a multi-line reply
        self._size = 0  # bytes so far of the reply being read
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False  # the transport's write buffer is full (see drain)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        # Kept: asyncio.get_running_loop() costs a getpid() system call each time.
        self._loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        if self.closed is not None:
            return
        lines = (self._partial + data if self._partial else data).split(b"\n")
        self._partial = lines.pop()  # what follows the last line end: part of a line
        try:
            for line in lines:
                code = _CODES.get(line[:3])
                if code is not None and line[3:4] == b" " and not self._lines:
                    # The usual one-line reply, without _line's bookkeeping.
                    self.replies.append(Reply(code, line[4:].rstrip().decode("utf-8", "replace")))
                else:
                    self._line(line)
            if self._size + len(self._partial) > MAX_REPLY:
                raise SmtpError(f"a reply longer than {MAX_REPLY} bytes")
        except SmtpError as exc:
            self._close(exc)
            assert self.transport is not None
            self.transport.abort()
            return
        waiter = self._waiter
        if waiter is not None and self.replies and not waiter.done():
            waiter.set_result(None)

    @property
    def unread(self) -> bool:
        """Something has come that no reply() has taken yet (a reply or part of one)."""
        return bool(self.replies or self._lines or self._partial)

    def _line(self, line: bytes) -> None:
        """One whole line of a reply (without its LF)."""
        if len(line) < 3 or not line[:3].isdigit():
            raise SmtpError(f"malformed reply {line[:100]!r}")
        text = line[4:].rstrip().decode("utf-8", "replace")
        if line[3:4] == b"-":
            self._lines.append(text)
            self._size += len(line) + 1
            if self._size > MAX_REPLY:
                raise SmtpError(f"a reply longer than {MAX_REPLY} bytes")
            return
        if self._lines:
            self._lines.append(text)
            text = "\n".join(self._lines)
            self._lines = []
            self._size = 0
        self.replies.append(Reply(int(line[:3]), text))

    def eof_received(self) -> bool:
        self._close(SmtpError("the server closed the connection"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(exc if exc is not None else SmtpError("the server closed the connection"))
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _close(self, why: Exception) -> None:
        if self.closed is None:
            self.closed = why
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _gone(self) -> SmtpError:
        why = self.closed
        if isinstance(why, SmtpError):
            return SmtpError(str(why))
        return SmtpError(f"the connection was lost: {type(why).__name__}: {why}")

    async def reply(self) -> Reply:
        """The next reply, waiting for it to arrive; raises once the connection is done."""
        while not self.replies:
            if self.closed is not None:
                raise self._gone()
            self._waiter = (self._loop or asyncio.get_running_loop()).create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.replies.popleft()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self._paused:
            if self.closed is not None:
                raise self._gone()
            self._drained = (self._loop or asyncio.get_running_loop()).create_future()
            await self._drained


class SmtpConnection:
    """One SMTP session, reused for many messages; not safe for concurrent use."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.extensions: dict[str, str] = {}
        self.last_used = 0.0
        self._protocol: _ReplyReader | None = None
        self._transport: asyncio.Transport | None = None
        self._closing = False  # the server said 421: finish and drop
        self._ahead: bytes | None = None  # the next envelope, written, its replies unread
        self._deadline = 0.0  # monotonic time the transaction under way must end by
        self._watchdog: asyncio.TimerHandle | None = None
        self._timed_out = False

    @property
    def usable(self) -> bool:
        return (
            self._transport is not None and not self._closing and not self._transport.is_closing()
        )

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self.extensions

    @property
    def smtputf8(self) -> bool:
        return "smtputf8" in self.extensions

    def _envelope(self, mail_from: str, rcpt: str) -> tuple[bytes, bytes] | MessageResult:
        """MAIL FROM and RCPT TO for this transaction, or why it cannot be sent here: an
        address that is not ASCII needs SMTPUTF8 (RFC 6531), and without it the relay would
        answer 5xx, which would wrongly read as a dead mailbox."""
        sender, recipient = mail_from.encode("utf-8"), rcpt.encode("utf-8")
        if _PATH_BREAKERS.search(sender) or _PATH_BREAKERS.search(recipient):
            return MessageResult("failed", f"unusable address {rcpt!r}", verdict=Verdict.OURS)
        params = b""
        if not (sender.isascii() and recipient.isascii()):
            if not self.smtputf8:
                return MessageResult("failed", NO_SMTPUTF8, verdict=Verdict.OURS)
            params = b" SMTPUTF8" + (b" BODY=8BITMIME" if "8bitmime" in self.extensions else b"")
        return b"MAIL FROM:<%s>%s\r\n" % (sender, params), b"RCPT TO:<%s>\r\n" % recipient

    def _ssl_context(self) -> ssl.SSLContext:
        return self.config.ssl_context or ssl.create_default_context()

    async def open(self) -> None:
        cfg = self.config
        try:
            async with asyncio.timeout(cfg.timeout):
                tls = cfg.security == "tls"
                protocol = _ReplyReader()
                self._transport, _ = await asyncio.get_running_loop().create_connection(
                    lambda: protocol,
                    cfg.host,
                    cfg.port,
                    ssl=self._ssl_context() if tls else None,
                    server_hostname=cfg.host if tls else None,
                )
                self._protocol = protocol
                greeting = await self._reply()
                if greeting.code != 220:
                    raise SmtpError(f"greeting: {greeting}")
                await self._ehlo()
                if cfg.security == "starttls":
                    await self._starttls()
                if cfg.username:
                    await self._auth(cfg.username, cfg.password or "")
        except BaseException:
            self.abort()
            raise
        self.last_used = time.monotonic()

    async def _ehlo(self) -> None:
        name = self.config.local_hostname or socket.gethostname()
        reply = await self._command(f"EHLO {name}".encode())
        if reply.code != 250:
            reply = await self._command(f"HELO {name}".encode())
            if reply.code != 250:
                raise SmtpError(f"HELO: {reply}")
            self.extensions = {}
            return
        self.extensions = {}
        for line in reply.text.splitlines()[1:]:
            keyword, _, params = line.partition(" ")
            self.extensions[keyword.lower()] = params

    async def _starttls(self) -> None:
        if "starttls" not in self.extensions:
            raise SmtpError("the server does not offer STARTTLS")
        reply = await self._command(b"STARTTLS")
        if reply.code != 220:
            raise SmtpError(f"STARTTLS: {reply}")
        assert self._transport is not None and self._protocol is not None
        if self._protocol.unread:
            # Said in the clear, it would be read as said under TLS (RFC 3207 6).
            raise SmtpError("the server sent more than its STARTTLS reply")
        transport = await asyncio.get_running_loop().start_tls(
            self._transport, self._protocol, self._ssl_context(), server_hostname=self.config.host
        )
        if transport is None:
            raise SmtpError("STARTTLS: the connection closed")
        self._transport = self._protocol.transport = transport
        await self._ehlo()  # RFC 3207: forget what was said before TLS

    async def _auth(self, username: str, password: str) -> None:
        offered = self.extensions.get("auth", "").upper().split()
        wanted = self.config.auth_mechanism
        mechanism = wanted or next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
        if mechanism is None or mechanism not in offered:
            raise SmtpAuthError(f"no usable AUTH mechanism (server offers {offered or 'none'})")

        def b64(value: str) -> bytes:
            return base64.b64encode(value.encode("utf-8"))

        if mechanism == "PLAIN":
            reply = await self._command(b"AUTH PLAIN " + b64(f"\0{username}\0{password}"))
        else:
            reply = await self._command(b"AUTH LOGIN")
            if reply.code == 334:
                reply = await self._command(b64(username))
            if reply.code == 334:
                reply = await self._command(b64(password))
        if reply.code != 235:
            raise SmtpAuthError(f"AUTH {mechanism}: {reply}")

    async def _reply(self) -> Reply:
        protocol = self._protocol
        assert protocol is not None
        # Pipelined replies arrive together: most are in already, and need no waiting.
        reply = protocol.replies.popleft() if protocol.replies else await protocol.reply()
        if reply.code == 421:
            self._closing = True
        return reply

    def _send(self, *data: bytes) -> None:
        """Write to the session. A transport closed under us (the server reset it) is a
        session error: uvloop's would raise RuntimeError, asyncio's drop the bytes."""
        if self._transport is None or self._transport.is_closing():
            raise SmtpError("the connection is closed")
        self._transport.writelines(data)

    async def _command(self, line: bytes) -> Reply:
        self._send(line + b"\r\n")
        return await self._reply()

    @property
    def ahead(self) -> bool:
        """The next message's envelope is on the wire (see send_message's `then`)."""
        return self._ahead is not None

    def _following(self, then: tuple[str, str] | None) -> bytes:
        """The next transaction's commands to pipeline behind this one's data, or none."""
        if then is None or not self.pipelining:
            return b""
        envelope = self._envelope(*then)
        if isinstance(envelope, MessageResult):
            return b""  # it fails on its own turn, before anything is sent for it
        return envelope[0] + envelope[1] + b"DATA\r\n"

    async def send_message(
        self, mail_from: str, rcpt: str, data: bytes, *, then: tuple[str, str] | None = None
    ) -> MessageResult:
        """One transaction. `data` is DATA-ready (dot-stuffed, ending in CRLF).
        Raises SmtpError/OSError/TimeoutError when the session breaks.

        `then`: the next message's envelope sender and recipient. With PIPELINING its MAIL
        FROM, RCPT TO and DATA go out in the same write as this message's data and end of
        data (RFC 2920: a transaction may start behind the previous one's final dot), so a
        message costs one round trip, not two. `ahead` then says they are on the wire, and
        the next call must be for that envelope (the server will want its data after its
        354): it reads their replies instead of writing them again."""
        assert self._transport is not None
        envelope = self._envelope(mail_from, rcpt)
        if isinstance(envelope, MessageResult):
            if self._ahead is not None:
                raise SmtpError("the next message is not the one pipelined")
            return envelope  # nothing was sent: the session is as it was
        # The timeout, without a timer per message (asyncio.timeout() cost a tenth of the
        # send path's CPU): a watchdog that checks the deadline now and then.
        self._deadline = time.monotonic() + self.config.timeout
        if self._watchdog is None:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(self.config.timeout, self._check_deadline)
        try:
            return await self._transaction(envelope, data, then)
        except (OSError, SmtpError) as exc:
            if self._timed_out:
                raise TimeoutError(f"no answer within {self.config.timeout:g} s") from exc
            raise
        finally:
            self._deadline = 0.0

    def _check_deadline(self) -> None:
        """The watchdog: a transaction past its deadline has its connection cut, which ends
        the read or write it waits in (send_message then raises TimeoutError)."""
        self._watchdog = None
        if self._transport is None or not self._deadline:
            return  # closed, or idle: the next transaction starts a watchdog again
        left = self._deadline - time.monotonic()
        if left > 0:
            self._watchdog = asyncio.get_running_loop().call_later(left, self._check_deadline)
            return
        self._timed_out = True
        self._transport.abort()

    async def _transaction(
        self, envelope: tuple[bytes, bytes], data: bytes, then: tuple[str, str] | None
    ) -> MessageResult:
        assert self._protocol is not None
        protocol = self._protocol
        mail_cmd, rcpt_cmd = envelope
        if self.pipelining:
            commands = mail_cmd + rcpt_cmd + b"DATA\r\n"
            if self._ahead is None:
                self._send(commands)
            elif self._ahead != commands:
                raise SmtpError("the next message is not the one pipelined")
            self._ahead = None
            mail = await self._reply()
            rcpt_reply = await self._reply()
            data_reply = await self._reply()
        else:
            self._send(mail_cmd)
            mail = await self._reply()
            if not mail.ok:
                return _classify("MAIL FROM", mail)
            self._send(rcpt_cmd)
            rcpt_reply = await self._reply()
            if not rcpt_reply.ok:
                await self._rset()
                return _classify("RCPT TO", rcpt_reply)
            self._send(b"DATA\r\n")
            data_reply = await self._reply()

        if data_reply.code == 354 and mail.ok and rcpt_reply.ok:
            following = self._following(then)
            # One system call (uvloop writes the three as one vector, without copying them).
            self._send(data, b".\r\n", following)
            self._ahead = following or None
            await protocol.drain()
            final = await self._reply()
            self.last_used = time.monotonic()
            if final.code // 100 == 2:
                return MessageResult("sent", str(final))
            return _classify("DATA", final)

        if data_reply.code == 354:
            # A server that wants data although the envelope failed: end it empty.
            self._send(b".\r\n")
            await self._reply()
        elif mail.ok and not self._closing:
            await self._rset()  # the transaction is still open on the server
        self.last_used = time.monotonic()
        if not mail.ok:
            return _classify("MAIL FROM", mail)
        if not rcpt_reply.ok:
            return _classify("RCPT TO", rcpt_reply)
        return _classify("DATA", data_reply)

    async def _rset(self) -> None:
        reply = await self._command(b"RSET")
        if reply.code != 250:
            raise SmtpError(f"RSET: {reply}")

    async def noop(self) -> bool:
        """Is an idle session still alive? (Servers drop idle clients.)"""
        try:
            async with asyncio.timeout(self.config.timeout):
                ok = (await self._command(b"NOOP")).code == 250
        except (OSError, SmtpError, TimeoutError):
            ok = False
        if ok:
            self.last_used = time.monotonic()
        return ok

    async def quit(self) -> None:
        if self.usable:
            try:
                async with asyncio.timeout(min(self.config.timeout, 5.0)):
                    await self._command(b"QUIT")
            except (OSError, SmtpError, TimeoutError):
                pass
        self.abort()

    def abort(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            self._transport.close()
        self._transport = None
        self._protocol = None

"""The maildir outbox: the embedded default transport, one file per message."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator, Sequence
from pathlib import Path

from digest.delivery.message import unstuff
from digest.delivery.recipient import Recipient
from digest.delivery.transports import More, Render, Sender, SendResult, copy_failed, sender_for
from digest.metrics import metrics

_CHUNK = 100


class MaildirTransport:
    """Writes each personalised message into `path/new` (tmp then rename, as maildir wants)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._box = mailbox.Maildir(self.path, factory=None, create=True)

    def send(
        self,
        envelope_from: Sender,
        batch: Sequence[Recipient],
        render: Render,
        more: More | None = None,
    ) -> Iterator[list[SendResult]]:
        # Files have no wire to keep busy: the next batch is asked for after this one.
        while batch:
            chunk: list[SendResult] = []
            for recipient in batch:
                result = self._deliver(envelope_from, recipient, render)
                metrics().deliveries.labels(result.outcome, "maildir").inc()
                chunk.append(result)
                if len(chunk) >= _CHUNK:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk
            batch = more() if more is not None else ()

    def _deliver(self, envelope_from: Sender, recipient: Recipient, render: Render) -> SendResult:
        try:
            message = unstuff(render(recipient))
            sender = sender_for(envelope_from, recipient)
        except Exception as exc:  # this copy only: the batch goes on
            return copy_failed(recipient, exc)
        try:
            # Return-Path records the envelope sender, as a delivering MTA would.
            self._box.add(b"Return-Path: <%s>\r\n" % sender.encode() + message)
        except OSError as exc:
            return SendResult(recipient.delivery_id, "retry", str(exc), True)
        return SendResult(recipient.delivery_id, "sent", "maildir")

    def close(self) -> None:
        self._box.close()

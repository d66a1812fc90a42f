"""The maildir outbox: the embedded default transport, one file per message."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator, Sequence
from pathlib import Path

from digest.delivery.message import unstuff
from digest.delivery.recipient import Recipient
from digest.delivery.transports import Render, SendResult

_CHUNK = 100


class MaildirTransport:
    """Writes each personalised message into `path/new` (tmp then rename, as maildir wants)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._box = mailbox.Maildir(self.path, factory=None, create=True)

    def send(
        self, envelope_from: str, batch: Sequence[Recipient], render: Render
    ) -> Iterator[list[SendResult]]:
        chunk: list[SendResult] = []
        for recipient in batch:
            try:
                # Return-Path records the envelope sender, as a delivering MTA would.
                data = b"Return-Path: <%s>\r\n" % envelope_from.encode() + unstuff(
                    render(recipient)
                )
                self._box.add(data)
                chunk.append(SendResult(recipient.delivery_id, "sent", "maildir"))
            except OSError as exc:
                chunk.append(SendResult(recipient.delivery_id, "retry", str(exc), True))
            if len(chunk) >= _CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def close(self) -> None:
        self._box.close()

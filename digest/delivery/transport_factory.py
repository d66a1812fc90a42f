"""The transport the settings name: the maildir outbox (embedded default) or SMTP.

Apart from the Protocol (`transports`), which the concrete transports implement: they import
the Protocol, and this module imports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from digest.config import Settings
from digest.delivery.maildir import MaildirTransport
from digest.delivery.smtp import SmtpTransport
from digest.delivery.transports import Transport


def make_transport(settings: Settings) -> Transport:
    """A new transport as `settings` configure it; the caller closes it."""
    if settings.transport == "smtp":
        return SmtpTransport.from_settings(settings)
    return MaildirTransport(settings.outbox_dir)


@contextmanager
def open_transport(settings: Settings) -> Iterator[Transport]:
    """make_transport, closed when the block ends, however it ends."""
    transport = make_transport(settings)
    try:
        yield transport
    finally:
        transport.close()

"""Errors of the delivery path, each with a message fit for the person running it.

They are DigestErrors, so the edges show them as such (CLI: one line and exit 2; API: a 4xx).
"""

from __future__ import annotations

from digest.errors import DigestError, NotFound


class DeliveryError(DigestError):
    """The issue cannot be delivered as asked (not rendered, not prepared, ...)."""


class LedgerError(DeliveryError, NotFound):
    """The issue or delivery named does not exist."""

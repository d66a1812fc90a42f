"""Errors of the delivery path, each with a message fit for the person running it."""

from __future__ import annotations


class DeliveryError(Exception):
    """The issue cannot be delivered as asked (not rendered, not prepared, ...)."""


class LedgerError(DeliveryError, LookupError):
    """The issue or delivery named does not exist."""

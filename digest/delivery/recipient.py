"""The per-recipient values a claimed delivery carries into personalisation and the transport."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Recipient:
    delivery_id: int
    subscription_id: int
    email: str
    name: str = ""
    variant_id: int | None = None  # the IssueVariant its copy comes from; None: the issue's

"""Public sign-up with double opt-in: the request path.

A post only records a sign-up request (`sign_up`); whether a confirmation is mailed is
decided and done after the response by `confirmations.send_confirmations`. The request does
the same statements and no mail I/O whatever the address's state (new, pending, confirmed,
unsubscribed, suppressed) and for the honeypot, so neither the answer nor its timing tells a
stranger anything about an address.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from digest.config import Settings
from digest.errors import DigestError
from digest.models import SignupRequest
from digest.subscribers.actions import clean_name
from digest.subscribers.addresses import normalise_email
from digest.subscribers.throttle import Throttle, Window, client_key, hashed
from digest.subscribers.topics import clean_language, clean_timezone

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignUpReceived:
    email: str  # normalised
    request_id: int | None  # None: the client is throttled, nothing will be sent


def sign_up(
    session: Session,
    list_id: int,
    email: str,
    name: str = "",
    *,
    client: str,
    bot: bool,
    throttle: Throttle,
    settings: Settings,
    language: str = "",
    timezone: str = "",
) -> SignUpReceived:
    """Record a sign-up post. Raises AddressError (a DigestError) for an address we do not
    accept; the caller commits, then has `send_confirmations` run on the request's id.
    `client` is the poster's IP; `bot`: the honeypot was filled in (recorded, never mailed)."""
    address = normalise_email(email)
    window = Window(3600, settings.signup_client_per_hour)
    if not throttle.hit(hashed("signup-client", client_key(client)), [window]):
        log.info("sign-up: client over %s posts an hour; nothing recorded", window.limit)
        return SignUpReceived(address, None)
    request = SignupRequest(
        list_id=list_id,
        email=address,
        name=clean_name(name),
        bot=bot,
        language=_or_none(clean_language, language),
        timezone=_or_none(clean_timezone, timezone),
    )
    session.add(request)
    session.flush()
    return SignUpReceived(address, request.id)


def _or_none(clean: Callable[[str], str | None], value: str) -> str | None:
    """A language or time zone the form offered, else nothing: a sign-up is not refused for
    a suggestion (the browser's time zone) we do not know."""
    try:
        return clean(value)
    except DigestError:
        return None

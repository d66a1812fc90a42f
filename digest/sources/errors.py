"""The error a source reports: a sentence a person can act on, kept as its last error."""

from __future__ import annotations

from digest.errors import DigestError


class SourceError(DigestError):
    """A source could not be read: fetch failed, not a feed, no items found, bad selectors.

    The message is written for the editor ("HTTP 404 Not Found for https://…"), one line,
    because it is shown in `digest sources list` and stored in `Source.last_error`; the
    edges tell it as they tell any `DigestError`.
    """


class FetchError(SourceError):
    """The document could not be fetched (network, HTTP status, size cap, redirects, file)."""


class FetchRefused(FetchError):
    """The collector would not fetch it: not http(s), or an address the policy refuses
    (`digest.sources.addresses`). Raised before any byte is sent to that address."""

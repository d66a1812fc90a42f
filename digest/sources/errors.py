"""The error a source reports: a sentence a person can act on, kept as its last error."""

from __future__ import annotations


class SourceError(Exception):
    """A source could not be read: fetch failed, not a feed, no items found, bad selectors.

    The message is written for the editor ("HTTP 404 Not Found for https://…"), one line,
    because it is shown in `digest sources list` and stored in `Source.last_error`.
    """


class FetchError(SourceError):
    """The document could not be fetched (network, HTTP status, size cap, redirects, file)."""

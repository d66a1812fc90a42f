"""Errors the edges turn into a clear message (CLI: one line and exit 2; API: a 4xx)."""


class DigestError(Exception):
    """Bad input or a request that cannot be honoured; the message is for the user."""


class NotFound(DigestError):
    """A list, issue, source or subscriber that does not exist."""

"""Response headers for pages reached through personal links.

A token in the URL is a capability: it must not leak through Referer, caches or search
engines, and no other site may frame the page to trick a click on its buttons.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Our own pages load nothing but our stylesheet.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# The view-online copy is the email's HTML: inline styles and remote images, never scripts.
ISSUE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)

COMMON = {
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
PRIVATE = {"cache-control": "no-store", "x-robots-tag": "noindex, nofollow"}


def _is_issue_copy(path: str) -> bool:
    """/v/TOKEN and /archive/SLUG/NUMBER serve an email's HTML; the archive's index does not."""
    if path.startswith("/v/"):
        return True
    parts = path.split("/")
    return len(parts) == 4 and parts[1] == "archive" and parts[3].isdigit()


class SecurityHeaders:
    """Plain ASGI middleware (no BaseHTTPMiddleware: it would buffer every response)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = dict(COMMON)
        # Static files and the public archive are for everyone: cacheable and indexable.
        if not path.startswith(("/static/", "/archive/")):
            extra.update(PRIVATE)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in present:
                    csp = ISSUE_CSP if _is_issue_copy(path) else PAGE_CSP
                    headers.append((b"content-security-policy", csp.encode()))
                headers.extend(
                    (k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in present
                )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

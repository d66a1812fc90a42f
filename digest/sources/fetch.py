"""Fetch a source's document like a good citizen: httpx with timeouts, a body size cap, a
redirect limit, gzip, conditional GET and a clear User-Agent; local files too (the demo reads
its sample page from disk).

What may be fetched (DESIGN.md, trust boundaries): only the target the operator configured (a
source's URL, or what `digest sources try/add` is given) may be a local file, and only when
the caller says so (`local_ok`). Everything a document steers us to (next pages, the feeds a
page announces, redirects, which we follow hop by hop) must be http(s), and every connection
goes only to an address `addresses.refusal` allows (checked where the socket is opened, see
`transport`), unless the operator sets DIGEST_ALLOW_PRIVATE_FETCH=1.

The core is async so many sources are fetched at once; `hosts.HostLimiter` keeps the number of
requests to any one host small (for every collecting process together when it is given
Redis's shared slots, see hosts.py). `fetch` is the one-document synchronous wrapper.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx

from digest.config import Settings
from digest.fetch_allowances import parse_allowance
from digest.sources.addresses import (
    AddressPolicy,
    literal_address,
    refused_message,
)
from digest.sources.errors import FetchError, FetchRefused
from digest.sources.text import one_line
from digest.sources.transport import GuardedTransport, Resolver

T = TypeVar("T")

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9,"
    " application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"
)
# A slow drip of bytes passes every per-read timeout; the whole fetch gets a deadline too.
TOTAL_TIMEOUT_FACTOR = 3


@dataclass(slots=True)
class Fetched:
    """A fetched document; `status` 304 means unchanged, with no content."""

    url: str  # after redirects (a file:// URL for a local file)
    status: int
    content: bytes
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def local_path(target: str) -> Path | None:
    """The file a target names (a file:// URL or a path), or None for http(s)."""
    parts = urlsplit(target)
    if parts.scheme == "file":
        return Path(url2pathname(unquote(parts.path)))
    if parts.scheme in ("http", "https"):
        return None
    if parts.scheme and len(parts.scheme) > 1:
        raise FetchError(f"unsupported address {target!r}: use http(s)://, file:// or a path")
    return Path(target).expanduser()


def normalise_target(target: str) -> str:
    """An http(s) URL as given, or the absolute file:// URL of a local path."""
    path = local_path(target.strip())
    if path is None:
        return target.strip()
    return path.resolve().as_uri()


class Limiter(Protocol):
    """Where a fetch waits for its turn at its host (`hosts.HostLimiter`)."""

    def slot(self, url: str) -> AbstractAsyncContextManager[None]: ...


def make_client(settings: Settings, *, resolver: Resolver | None = None) -> httpx.AsyncClient:
    """The collector's HTTP client: redirects are followed by `fetch_async`, hop by hop, and
    connections go through `GuardedTransport` (no proxy from the environment either)."""
    transport = GuardedTransport(
        policy=address_policy(settings),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        resolver=resolver,
    )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.fetch_timeout, connect=min(settings.fetch_timeout, 10.0)),
        follow_redirects=False,
        headers={
            "User-Agent": settings.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate",
        },
        transport=transport,
        trust_env=False,
    )


def address_policy(settings: Settings) -> AddressPolicy:
    allowed = tuple(parse_allowance(entry) for entry in settings.allow_private_fetch_to)
    return AddressPolicy(settings.allow_private_fetch, allowed)


def _shown(url: str) -> str:
    """A URL from a document, fit for a one-line error message."""
    url = one_line(url)
    return url if len(url) <= 200 else url[:199] + "…"


def web_url(url: str, settings: Settings, *, via: str | None = None) -> str:
    """`url` if the collector may fetch it from the web: http(s), and not an address the policy
    refuses when the host is written as one (names are checked as they resolve, at connect).
    `via` says where the URL came from, for the message."""
    came = f" (a redirect from {_shown(via)})" if via else ""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        # httpx will not fetch it; still, "0177.0.0.1" is better refused as 127.0.0.1.
        with suppress(ValueError):
            parts = urlsplit(url)
            if parts.scheme.lower() in ("http", "https"):
                _check_literal(parts.hostname or "", parts.port, parts.scheme, settings, came)
        raise FetchError(f"invalid URL {_shown(url)!r}{came}: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchRefused(
            f"refused: {_shown(url)} is not an http(s) URL{came}; only a source's own address"
            " may be a local file"
        )
    if not parsed.host:
        raise FetchError(f"invalid URL {_shown(url)!r}{came}: it names no host")
    _check_literal(parsed.host, parsed.port, parsed.scheme, settings, came)
    return url


def _check_literal(host: str, port: int | None, scheme: str, settings: Settings, came: str) -> None:
    """Refuse a host written as an address the policy refuses (a name waits for connect)."""
    address = literal_address(host)
    if address is None:
        return
    port = port or (443 if scheme.lower() == "https" else 80)
    reason = address_policy(settings).refusal(address, port)
    if reason is not None:
        raise FetchRefused(refused_message(host, address, reason, resolved=False) + came)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MB"


def _read_file(path: Path, max_bytes: int) -> Fetched:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FetchError(f"{path} is larger than {_megabytes(max_bytes)}")
        content = path.read_bytes()
    except FetchError:
        raise
    except IsADirectoryError as exc:
        raise FetchError(f"{path} is a directory, not a document") from exc
    except FileNotFoundError as exc:
        raise FetchError(f"no such file: {path}") from exc
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return Fetched(url=path.resolve().as_uri(), status=200, content=content)


def _redirect_target(response: httpx.Response, settings: Settings) -> str:
    location = response.headers["location"]
    try:
        target = str(response.url.join(location))
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError(
            f"HTTP {response.status_code} from {response.url} to an invalid URL"
            f" {_shown(location)!r}"
        ) from exc
    return web_url(target, settings, via=str(response.url))


async def _read_http(
    client: httpx.AsyncClient, target: str, headers: dict[str, str], settings: Settings
) -> Fetched:
    # Redirects hop by hop: each new URL passes `web_url` before it is requested.
    url = target
    for _hop in range(settings.fetch_max_redirects + 1):
        async with client.stream("GET", url, headers=headers) as response:
            if response.has_redirect_location:
                url = _redirect_target(response, settings)
                continue
            return await _read_body(response, url, settings.fetch_max_bytes)
    raise FetchError(f"more than {settings.fetch_max_redirects} redirects from {target}")


async def _read_body(response: httpx.Response, url: str, max_bytes: int) -> Fetched:
    if response.status_code == 304:
        await response.aread()  # the empty body, read to the end: the connection is reused
        return Fetched(
            url=str(response.url),
            status=304,
            content=b"",
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
        )
    if response.status_code >= 300:
        reason = response.reason_phrase or ""
        raise FetchError(f"HTTP {response.status_code} {reason} for {response.url}".strip())
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"{url} is larger than {_megabytes(max_bytes)} ({declared} bytes)")
    body = bytearray()
    # Decoded bytes are counted, so a gzip bomb stops at the cap too.
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(f"{url} is larger than {_megabytes(max_bytes)}")
    return Fetched(
        url=str(response.url),
        status=response.status_code,
        content=bytes(body),
        content_type=response.headers.get("content-type"),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )


async def fetch_async(
    client: httpx.AsyncClient,
    target: str,
    *,
    local_ok: bool = False,
    etag: str | None = None,
    last_modified: str | None = None,
    settings: Settings,
    limiter: Limiter | None = None,
) -> Fetched:
    """Fetch one document; every failure is a `FetchError` whose message says what happened.

    `local_ok`: `target` is what the operator configured (a source's own address), so it may
    name a local file. Whatever a document points to is fetched with `local_ok=False`."""
    if local_ok and (path := local_path(target)) is not None:
        return _read_file(path, settings.fetch_max_bytes)
    target = web_url(target, settings)
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    total = settings.fetch_timeout * TOTAL_TIMEOUT_FACTOR
    slot = limiter.slot(target) if limiter else nullcontext()
    try:
        # Waiting for a busy host's slot is not the fetch: the deadline starts with the slot.
        async with slot, asyncio.timeout(total):
            return await _read_http(client, target, headers, settings)
    except FetchError:
        raise
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise FetchError(f"timed out after {settings.fetch_timeout:g} s fetching {target}") from exc
    except httpx.ConnectError as exc:
        host = urlsplit(target).netloc
        raise FetchError(f"could not connect to {host}: {exc or 'connection failed'}") from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise FetchError(f"invalid URL {target!r}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"fetching {target} failed: {type(exc).__name__}: {exc}") from exc


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def fetch(
    target: str,
    *,
    local_ok: bool = False,
    etag: str | None = None,
    last_modified: str | None = None,
    settings: Settings,
) -> Fetched:
    """Fetch one document synchronously (see `fetch_async`)."""

    async def once() -> Fetched:
        async with make_client(settings) as client:
            return await fetch_async(
                client,
                target,
                local_ok=local_ok,
                etag=etag,
                last_modified=last_modified,
                settings=settings,
            )

    return run_sync(once())

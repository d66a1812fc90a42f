"""An httpx transport that connects only to addresses the collector may fetch from.

Checking a URL's host name is not enough: DNS can answer a public address to the check and
127.0.0.1 to the connection a moment later (DNS rebinding). So the check lives where the socket
is opened: the network backend resolves the host once, judges every address the answer holds
(`addresses.refusal`), and connects to the address it judged. TLS and the Host header still use
the URL's host name, because httpcore takes those from the request, not from the socket.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from ipaddress import ip_address

import anyio
import httpcore
import httpx

from digest.fetch_allowances import IPAddress
from digest.sources.addresses import AddressPolicy, refused_message
from digest.sources.errors import FetchRefused

# (host, port) -> the addresses it resolves to, in the resolver's order.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's AnyIO backend behind the address policy."""

    def __init__(self, *, policy: AddressPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self._resolve = resolver or system_resolver
        self._inner = httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        try:
            with anyio.fail_after(timeout):
                answers = await self._resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
        addresses: list[IPAddress] = []
        for answer in answers:
            address = ip_address(answer)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no address")
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port, timeout)
        # One refused address refuses the name: a mixed answer is how rebinding starts.
        for address in addresses:
            reason = self.policy.refusal(address, port)
            if reason is not None:
                raise FetchRefused(refused_message(host, address, reason, resolved=True))
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise FetchRefused("refused: the collector does not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (HTTP/1.1, TLS, keep-alive pool) over a `GuardedBackend`, with no
    proxy: a proxy would open the connections itself, where no address check can reach."""

    def __init__(
        self,
        *,
        policy: AddressPolicy,
        limits: httpx.Limits,
        verify: ssl.SSLContext | bool = True,
        resolver: Resolver | None = None,
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self.backend = GuardedBackend(policy=policy, resolver=resolver)
        # httpx 0.28 takes no network backend (encode/httpx#3749): its pool is made again with
        # the same options and ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )

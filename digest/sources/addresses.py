"""Which network addresses the collector may connect to.

A remote document picks the URLs the collector fetches next (next links, redirects, the feeds
a page announces), so without a check a stranger could make us read our own network: the cloud
metadata service on 169.254.169.254, an admin page on 127.0.0.1, a database on 10.0.0.5. Only
globally reachable unicast addresses pass, unless the operator allows the others: all of them
(DIGEST_ALLOW_PRIVATE_FETCH=1) or a few (DIGEST_ALLOW_PRIVATE_FETCH_TO, e.g. an intranet feed
server "10.0.0.5:8080", without opening the cloud metadata service).

An address is judged as the system resolver reads it (http://2130706433/ and http://0x7f.1/ are
127.0.0.1), and IPv6 forms that carry an IPv4 address (::ffff:127.0.0.1, IPv4-compatible,
6to4, Teredo, NAT64) are judged by the IPv4 address they carry too.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from digest.fetch_allowances import Allowance, IPAddress

ALLOW_HINT = (
    "set DIGEST_ALLOW_PRIVATE_FETCH=1 to allow it, or list it in DIGEST_ALLOW_PRIVATE_FETCH_TO"
)

_SHARED = ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
# Special-purpose blocks some Python versions still call global (IANA registries): IETF
# protocol assignments, documentation, discard-only, deprecated site-local, local-use NAT64.
_SPECIAL = tuple(
    ip_network(n)
    for n in (
        "192.0.0.0/24",
        "2001::/23",
        "2001:db8::/32",
        "100::/64",
        "fec0::/10",
        "64:ff9b:1::/48",
    )
)
_NAT64 = (ip_network("64:ff9b::/96"), ip_network("64:ff9b:1::/48"))
_METADATA = {IPv4Address("169.254.169.254"), IPv6Address("fd00:ec2::254")}
# What inet_aton reads as an IPv4 address: 1 to 4 parts, decimal, octal (0...) or hex (0x...).
_LOOSE_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names without DNS, in any spelling the resolver accepts
    ("2130706433", "0x7f.1", "0177.0.0.1", "127.1", "::ffff:127.0.0.1", "fe80::1%eth0",
    one trailing dot); None for a name."""
    host = host.strip("[]")
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    try:
        return ip_address(host.replace("%25", "%"))
    except ValueError:
        pass
    if not _LOOSE_IPV4.fullmatch(host):
        return None
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address carries, if it is one of the forms that do."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    if any(address in network for network in _NAT64):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 0xFFFF:  # IPv4-compatible ::a.b.c.d
        return IPv4Address(int(address))
    return None


def _kind(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address in _METADATA:
        return "the cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private and not any(address in n for n in _SPECIAL):
        return "a private address"
    if not address.is_global or any(address in network for network in _SPECIAL):
        return "a special-purpose address"
    return None


def refusal(address: IPAddress) -> str | None:
    """Why the collector may not connect to `address`, in words ("a loopback address"), or
    None for a public unicast address."""
    if isinstance(address, IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = _kind(inner)
            if reason is not None:
                return f"an IPv6 form of {inner}, {reason}"
            if address.ipv4_mapped is not None:
                return None  # ::ffff:a.b.c.d is a.b.c.d on the wire
    return _kind(address)


def refused_message(host: str, address: IPAddress, reason: str, *, resolved: bool) -> str:
    """The error a refused address is reported with, e.g. "refused: 10.0.0.5 is a private
    address; set DIGEST_ALLOW_PRIVATE_FETCH=1 to allow it"."""
    host = host.strip("[]")
    try:
        plain = ip_address(host.replace("%25", "%")) == address  # written the usual way
    except ValueError:
        plain = False
    if resolved and not plain:
        what = f"{host} resolves to {address}, {reason}"
    elif plain:
        what = f"{host} is {reason}"
    else:
        what = f"{host} is {address}, {reason}"
    return f"refused: {what}; {ALLOW_HINT}"


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Where the collector may connect: public addresses, plus what the operator allowed."""

    allow_private: bool = False
    allowed: tuple[Allowance, ...] = ()

    def refusal(self, address: IPAddress, port: int) -> str | None:
        """Why connecting to `address`:`port` is refused, or None when it is allowed."""
        if self.allow_private:
            return None
        reason = refusal(address)
        if reason is None or any(a.admits(address, port) for a in self.allowed):
            return None
        return reason

"""DIGEST_ALLOW_PRIVATE_FETCH_TO's entries: private networks (and maybe one port) the operator
lets the collector reach. Parsed here, below `digest.config` (which validates the setting) and
`digest.sources.addresses` (which applies it), so neither imports the other's package.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class Allowance:
    """A network, and maybe one port, the operator lets the collector reach though private."""

    network: IPv4Network | IPv6Network
    port: int | None = None

    def admits(self, address: IPAddress, port: int) -> bool:
        return address in self.network and self.port in (None, port)


def parse_allowance(entry: str) -> Allowance:
    """ "10.0.0.5", "10.0.0.0/8", "10.0.0.5:8080", "fd00::/8" or "[fd00::1]:8080"."""
    text, port = entry.strip(), None
    if text.startswith("["):
        text, _, rest = text[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif text.count(":") == 1:
        text, port = text.split(":")
    try:
        network = ip_network(text, strict=False)
    except ValueError as exc:
        raise ValueError(f"{entry!r} is not an address or network: {exc}") from exc
    if port is None:
        return Allowance(network)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r} has no valid port after the address")
    return Allowance(network, int(port))

"""The collector's address policy over generated addresses and spellings (hypothesis).

The oracle is written from the IANA special-purpose registries, not from `ipaddress`'s flags
the policy itself uses, so a gap in either shows up as a counterexample.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from lxml import html as lxml_html

from digest.config import Settings
from digest.fetch_allowances import parse_allowance
from digest.sources.addresses import (
    AddressPolicy,
    embedded_ipv4,
    literal_address,
    refusal,
)
from digest.sources.errors import FetchError, FetchRefused
from digest.sources.fetch import web_url
from digest.sources.listing import base_of
from digest.urls import absolute_url

# IPv4 space that is not globally reachable unicast (RFC 6890 and its updates, multicast,
# broadcast). 192.88.99.0/24 (the deprecated 6to4 relay anycast) is left to either answer.
SPECIAL_V4 = [
    ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    )
]  # fmt: skip
SPECIAL_V6 = [
    ip_network(n)
    for n in (
        "::1/128",
        "::/128",
        "fe80::/10",
        "fc00::/7",
        "ff00::/8",
        "2001:db8::/32",
        "fec0::/10",
    )
]
RELAY_6TO4 = ip_network("192.88.99.0/24")
OFF = Settings(allow_private_fetch=False)

ipv4s = st.integers(0, 2**32 - 1).map(IPv4Address)


def inside(network: IPv4Network | IPv6Network) -> st.SearchStrategy[IPv4Address | IPv6Address]:
    first, size = int(network.network_address), network.num_addresses
    return st.integers(0, size - 1).map(lambda n: type(network.network_address)(first + n))


special_v4 = st.sampled_from(SPECIAL_V4).flatmap(inside)
special_v6 = st.sampled_from(SPECIAL_V6).flatmap(inside)


@st.composite
def loose_spelling(draw: st.DrawFn, address: IPv4Address) -> str:
    """`address` as inet_aton reads it: 1 to 4 parts, each decimal, octal or hex."""
    value = int(address)
    count = draw(st.integers(1, 4))
    # a.b.c.d / a.b.(16 bits) / a.(24 bits) / (32 bits)
    widths = {1: [32], 2: [8, 24], 3: [8, 8, 16], 4: [8, 8, 8, 8]}[count]
    parts, shift = [], 32
    for width in widths:
        shift -= width
        parts.append((value >> shift) & ((1 << width) - 1))
    spelled = []
    for part in parts:
        style = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
        zeros = "0" * draw(st.integers(0, 2))
        if style == "dec":
            spelled.append(str(part))
        elif style == "oct":
            spelled.append("0" + zeros + format(part, "o"))
        else:
            digits = format(part, "x" if style == "hex" else "X")
            spelled.append(draw(st.sampled_from(["0x", "0X"])) + zeros + digits)
    return ".".join(spelled)


@given(address=ipv4s, data=st.data())
@example(address=IPv4Address("127.0.0.1"), data=None)
def test_every_ipv4_spelling_reads_as_its_address(
    address: IPv4Address, data: st.DataObject
) -> None:
    spelling = "2130706433" if data is None else data.draw(loose_spelling(address))
    assert literal_address(spelling) == address
    assert IPv4Address(socket.inet_aton(spelling)) == address  # what the resolver reads too
    assert literal_address(spelling + ".") == address


@given(address=ipv4s)
def test_ipv4_refused_exactly_when_special(address: IPv4Address) -> None:
    assume(address not in RELAY_6TO4)
    special = any(address in network for network in SPECIAL_V4)
    assert (refusal(address) is not None) == special


@given(address=special_v4, data=st.data())
def test_special_ipv4_refused_in_any_spelling_and_any_ipv6_form(
    address: IPv4Address, data: st.DataObject
) -> None:
    spelling = data.draw(loose_spelling(address))
    with pytest.raises(FetchRefused) as refused:
        web_url(f"http://{spelling}:8080/feed", OFF)
    assert str(address) in str(refused.value) and "DIGEST_ALLOW_PRIVATE_FETCH=1" in str(
        refused.value
    )
    value = int(address)
    forms = [
        IPv6Address((0xFFFF << 32) | value),  # ::ffff:a.b.c.d
        IPv6Address((0x2002 << 112) | (value << 80)),  # 6to4
        IPv6Address((0x64FF9B << 96) | value),  # NAT64
    ]
    if value > 0xFFFF:
        forms.append(IPv6Address(value))  # IPv4-compatible ::a.b.c.d
    for form in forms:
        assert embedded_ipv4(form) == address
        assert refusal(form) is not None, form
        with pytest.raises(FetchRefused):
            web_url(f"http://[{form}]/", OFF)
    with pytest.raises(FetchRefused, match=str(address)):
        web_url(f"http://[::ffff:{address}]/", OFF)


@given(address=special_v6)
def test_special_ipv6_refused(address: IPv6Address) -> None:
    assert refusal(address) is not None
    with pytest.raises(FetchRefused, match="refused: "):
        web_url(f"https://[{address}]:443/", OFF)


public_v4 = (
    st.integers(0x01000000, 0xDFFFFFFF)  # 1.0.0.0 to 223.255.255.255: no 0/8, multicast, 240/4
    .map(IPv4Address)
    .filter(lambda a: not any(a in network for network in [*SPECIAL_V4, RELAY_6TO4]))
)


@given(address=public_v4)
def test_public_ipv4_and_its_mapped_form_pass(address: IPv4Address) -> None:
    assert refusal(address) is None
    assert refusal(IPv6Address((0xFFFF << 32) | int(address))) is None
    assert web_url(f"http://{address}/feed", OFF) == f"http://{address}/feed"


@given(address=inside(ip_network("2a00::/12")))
def test_public_ipv6_passes(address: IPv6Address) -> None:
    assert refusal(address) is None


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z0-9-]{1,15}){0,3}\.[a-z]{2,6}", fullmatch=True)
)
def test_names_are_not_literals(host: str) -> None:
    assume(any(ch not in "0123456789abcdefx." for ch in host))
    assert literal_address(host) is None
    assert web_url(f"https://{host}/feed", OFF)  # names are judged when they resolve


@given(address=special_v4, port=st.integers(1, 65535), other=st.integers(1, 65535))
def test_an_allowance_admits_its_address_and_port_only(
    address: IPv4Address, port: int, other: int
) -> None:
    assume(port != other)
    policy = AddressPolicy(allowed=(parse_allowance(f"{address}:{port}"),))
    assert policy.refusal(address, port) is None
    assert policy.refusal(address, other) is not None
    assert (
        AddressPolicy(allowed=(parse_allowance(f"{address}/32"),)).refusal(address, other) is None
    )
    assert AddressPolicy(allow_private=True).refusal(address, other) is None


def test_allowance_forms() -> None:
    assert parse_allowance("[fd00::1]:8080").port == 8080
    assert parse_allowance("fd00::/8").network == ip_network("fd00::/8")
    assert parse_allowance("10.1.2.3").port is None
    for bad in ("intranet", "10.0.0.5:http", "10.0.0.5:0", "[fd00::1]:99999"):
        with pytest.raises(ValueError, match=r"10\.0\.0\.5|intranet|fd00"):
            parse_allowance(bad)


HOSTILE_HREFS = [
    "file:///etc/passwd", "FILE:///etc/passwd", "file:etc/passwd", "ftp://h/x", "gopher://h/",
    "data:text/html,x", "javascript:alert(1)", "jar:file:///x!/", "view-source:file:///x",
    "\tfile:///etc/passwd", " file:///etc/passwd", "fi\nle:///etc/passwd", "//h/x", "x",
]  # fmt: skip


@given(
    href=st.one_of(
        st.sampled_from(HOSTILE_HREFS), st.text(max_size=40), st.from_regex(r"[a-z]{1,8}:.{0,20}")
    ),
    base=st.sampled_from(["https://news.example.org/a/b", "http://10.0.0.1/", "file:///srv/x"]),
)
def test_a_remote_document_cannot_name_anything_but_http(href: str, base: str) -> None:
    """What a remote page says is http(s) or nothing, its <base href> included."""
    page = "https://news.example.org/list"
    resolved = absolute_url(href, page)
    assert resolved is None or resolved.startswith(("http://", "https://"))
    document = lxml_html.document_fromstring("<html><head></head><body>x</body></html>")
    head = document.find("head")
    assert head is not None
    try:
        head.append(lxml_html.Element("base", href=href))
    except ValueError:  # control characters: no parsed page holds them in an attribute
        assume(False)
    assert base_of(document, page).startswith(("http://", "https://"))
    assert not base_of(document, base).startswith("file:") or base.startswith("file:")
    if resolved is not None:
        try:
            web_url(resolved, Settings(allow_private_fetch=True))
        except FetchRefused as exc:
            pytest.fail(f"{resolved!r} resolved from a page but refused: {exc}")
        except FetchError:
            pass  # a URL httpx cannot read is not fetched either

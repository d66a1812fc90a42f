"""URLs from content: resolved against their page (`absolute_url`), keyed so two spellings of
one page are one item (`canonical_url`), and made safe to put in an attribute, a text part or a
mail client (`safe_url`).

A link or image from a feed reaches the email as an attribute value, after nh3, lxml and MRML
have each parsed and re-serialised it their own way (MRML writes a single-quoted value that
holds a `"` back as `\\"`, which HTML does not read as an escape). So a URL is kept only if it
is http(s) with a plain host (mailto where the caller allows it) and is rebuilt with every
character outside RFC 3986's set percent-encoded: no quote, space, angle bracket, backslash,
bracket or control character is left to close an attribute or to change how a client reads the
URL, whichever stage serialises it next.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

WEB_SCHEMES = frozenset({"http", "https"})
LINK_SCHEMES = WEB_SCHEMES | {"mailto"}
# A longer "URL" is junk, and PostgreSQL's btree index on the canonical URL has a size limit.
URL_MAX = 2_000

# WHATWG URL parsing strips C0 controls and spaces at both ends and tabs/newlines anywhere.
_ENDS = "".join(chr(c) for c in range(0x21))
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
# RFC 3986 reserved and unreserved characters that are safe inside a double-quoted attribute,
# and "%" for escapes already there. Everything else (' " < > \ ` { } | ^ [ ] space, controls,
# non-ASCII) is percent-encoded. "#" stays out: it may only start the fragment.
_SAFE = "!$&()*+,;=:@/?%-._~"
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")


def _encode(component: str) -> str:
    return quote(_STRAY_PERCENT.sub("%25", component), safe=_SAFE)


def _host(netloc: str, hostname: str | None, port: int | None) -> str | None:
    # Userinfo only misleads ("https://bank.example@evil.example/"), and a backslash is read
    # as a slash by browsers but not by urlsplit: the host would not be the one shown.
    if not hostname or "@" in netloc or "\\" in netloc:
        return None
    if netloc.startswith("["):
        try:
            host = f"[{ipaddress.IPv6Address(hostname).compressed}]"
        except ValueError:
            return None
    else:
        try:
            host = hostname.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return None
        if not _HOST.fullmatch(host):
            return None
    return host if port is None else f"{host}:{port}"


def safe_url(value: str | None, *, schemes: frozenset[str] = WEB_SCHEMES) -> str | None:
    """`value` as a normalised, percent-encoded absolute URL, or None when it may not be one.

    Idempotent: a URL this returns comes back unchanged.
    """
    if not value:
        return None
    url = _TAB_NEWLINE.sub("", value.strip(_ENDS))
    if not url or len(url) > URL_MAX:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        return None
    if scheme == "mailto":
        if parts.netloc or not parts.path:
            return None
        out = f"mailto:{_encode(parts.path)}"
        if parts.query:
            out += f"?{_encode(parts.query)}"
    else:
        host = _host(parts.netloc, parts.hostname, port)
        if host is None:
            return None
        out = f"{scheme}://{host}{_encode(parts.path)}"
        if parts.query:
            out += f"?{_encode(parts.query)}"
        if parts.fragment:
            out += f"#{_encode(parts.fragment)}"
    return out if len(out) <= URL_MAX else None


def safe_link(value: str | None) -> str | None:
    """A link target: http(s) or mailto."""
    return safe_url(value, schemes=LINK_SCHEMES)


# Query parameters that only say who clicked where: not part of a page's identity.
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid",
        "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "__hstc", "__hssc", "__hsfp",
        "hsctatracking", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "wickedid",
        "ck_subscriber_id", "ref_src", "ref_url", "cmpid", "s_cid", "at_medium",
        "at_campaign", "ncid", "sr_share", "spm",
    }
)  # fmt: skip


def absolute_url(href: str | None, base: str | None, *, local_ok: bool = False) -> str | None:
    """`href` resolved against `base`; None unless it is http(s) (file: too when `local_ok`)."""
    if not href:
        return None
    # Browsers drop tabs and newlines anywhere in a URL and spaces around it.
    href = re.sub(r"[\t\n\r]", "", href).strip()
    if not href or href.startswith("#"):
        return None
    try:
        url = urljoin(base or "", href)
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    allowed = scheme in WEB_SCHEMES and bool(parts.netloc)
    if not allowed and not (local_ok and scheme == "file"):
        return None
    if len(url) > URL_MAX:
        return None
    return url.replace(" ", "%20")


def canonical_url(url: str | None) -> str | None:
    """The key that makes two spellings of one page equal.

    https for http, lower-case host, no default port, no fragment, no tracking parameters
    (utm_* and click ids), the other parameters sorted, no trailing slash except the root.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme == "http":
        scheme = "https"
    host = (parts.hostname or "").lower().rstrip(".")
    if port and not (port in (80, 443) and scheme == "https"):
        host = f"{host}:{port}"
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not key.lower().startswith("utm_") and key.lower() not in TRACKING_PARAMS
    ]
    canonical = urlunsplit((scheme, host, path, urlencode(sorted(query)), ""))
    return canonical[:URL_MAX]

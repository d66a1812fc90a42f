"""Email addresses: as people type them, as we keep them, as they go on the wire, as shown.

One place decides what an address is: sign-up, the CLI's add and import, and proofs all call
`normalise_email`. The stored form is the local part as typed (NFC, lower-case) and the domain
in IDNA (ASCII), so one mailbox has one key, suppressions and bounce reports (which carry the
ASCII form) match it, and only a non-ASCII local part ever needs SMTPUTF8. People read the
Unicode form (`display_email`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import idna
from email_validator import EmailNotValidError, validate_email

from digest.errors import DigestError

MAX_LENGTH = 320  # what any column holding an address takes
# Control, format (bidi overrides, zero-width joiners ...), surrogate, private-use, unassigned
# and line/paragraph separators: never part of an address someone can type and read back.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Bytes that would end or split an SMTP path or an address in a header.
_PATH_BREAKERS = re.compile(r'[<>()\[\]\\,;:" ]')


class AddressError(DigestError):
    """The text is not an address we accept; the message says why, fit for the person."""


def _shown(raw: str) -> str:
    """The input quoted safely for an error line (repr escapes controls), and short."""
    return repr(raw if len(raw) <= 80 else raw[:77] + "...")


def unprintable_character(value: str) -> str | None:
    """What is wrong with the first character no one can read back, or None."""
    if value.isascii() and value.isprintable():
        return None  # the common case, without a scan in Python
    for position, char in enumerate(value, 1):
        category = unicodedata.category(char)
        if char == "\ufffd":
            return f"U+FFFD (a character lost in decoding) at position {position}"
        if category in _UNPRINTABLE or (category == "Zs" and char != " "):
            name = unicodedata.name(char, "a control character")
            return f"U+{ord(char):04X} ({name}) at position {position}"
    return None


# An ASCII dot-atom local part (RFC 5322), the form nearly every address has.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_MAX_LOCAL = 64
_MAX_ADDRESS = 254


@lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str | None:
    """The domain as validated for any plain local part, or None when it is refused."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).ascii_domain
    except EmailNotValidError:
        return None


def _fast(value: str) -> str | None:
    """The stored form of a plain ASCII address, with its domain validated once per import
    rather than once per row (an import of a million rows has a few thousand domains); None
    for anything else, which the full check decides."""
    local, at, domain = value.rpartition("@")
    if (
        not at
        or len(value) > _MAX_ADDRESS
        or len(local) > _MAX_LOCAL
        or not value.isascii()
        or not _DOT_ATOM.fullmatch(local)
    ):
        return None
    ascii_domain = _ascii_domain(domain)
    return f"{local.lower()}@{ascii_domain}" if ascii_domain else None


def normalise_email(raw: str) -> str:
    """The address as stored: validated syntax, local part NFC and lower-case, IDNA domain.
    Raises AddressError with a clear reason."""
    value = raw.strip(" ")
    if len(value) > MAX_LENGTH:
        raise AddressError(f"invalid address: longer than {MAX_LENGTH} characters")
    problem = unprintable_character(value)
    if problem:
        raise AddressError(f"invalid address {_shown(value)}: it contains {problem}")
    return _fast(value) or _checked(value)


def _checked(value: str) -> str:
    """The full check of `normalise_email` (any address, every reason for a refusal)."""
    try:
        info = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise AddressError(f"invalid address {_shown(value)}: {exc}") from exc
    local = unicodedata.normalize("NFC", info.local_part.lower())
    if unprintable_character(local):  # lower() of an exotic letter, never seen but cheap
        raise AddressError(f"invalid address {_shown(value)}")
    return f"{local}@{info.ascii_domain}"


def display_email(address: str) -> str:
    """The address as people read it: the domain in Unicode (bücher.example, not xn--...)."""
    local, at, domain = address.rpartition("@")
    if not at or "xn--" not in domain:
        return address
    try:
        return f"{local}@{idna.decode(domain)}"
    except (idna.IDNAError, UnicodeError):
        return address


def wire_address(address: str) -> str:
    """The address as it goes into RCPT TO and the To field: the domain in IDNA (rows stored
    before domains were kept in ASCII have it in Unicode). Raises AddressError for anything
    that could break the command or the header: the one delivery fails, not its batch."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "@" in local:
        raise AddressError(f"unusable address {_shown(address)}: no local part and domain")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise AddressError(f"unusable address {_shown(address)}: {exc}") from exc
    wire = f"{local}@{domain}"
    if unprintable_character(wire) or _PATH_BREAKERS.search(wire):
        raise AddressError(f"unusable address {_shown(address)}")
    return wire


def needs_smtputf8(address: str) -> bool:
    """A non-ASCII local part can only be sent with SMTPUTF8 (RFC 6531); domains are IDNA."""
    return not address.isascii()

"""Addresses: what normalise_email accepts and how it stores it, over generated input too."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from digest.errors import DigestError
from digest.subscribers.addresses import (
    AddressError,
    display_email,
    needs_smtputf8,
    normalise_email,
    wire_address,
)

FORBIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
DOMAINS = [
    "example.org",
    "bücher.example",
    "BÜCHER.Example",
    "例え.テスト",
    "xn--bcher-kva.example",
]


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Ada@Example.org", "ada@example.org"),
        ("  x@bücher.example ", "x@xn--bcher-kva.example"),
        ("x@BÜCHER.example", "x@xn--bcher-kva.example"),
        ("x@xn--bcher-kva.example", "x@xn--bcher-kva.example"),
        ("Ädä@bücher.example", "ädä@xn--bcher-kva.example"),
        ("A\u0308da@example.org", "äda@example.org"),  # NFD typed, NFC kept
        ("用户@例え.テスト", "用户@xn--r8jz45g.xn--zckzah"),
    ],
)
def test_stored_form_has_an_idna_domain_and_an_nfc_local_part(raw: str, stored: str) -> None:
    assert normalise_email(raw) == stored
    assert wire_address(stored) == stored
    assert normalise_email(display_email(stored)) == stored


def test_display_shows_the_unicode_domain() -> None:
    assert display_email("x@xn--bcher-kva.example") == "x@bücher.example"
    assert display_email("ädä@xn--r8jz45g.xn--zckzah") == "ädä@例え.テスト"
    assert display_email("a@example.org") == "a@example.org"
    assert display_email("a@xn--broken-.example") == "a@xn--broken-.example"  # kept as is


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("a\r\nbcc: v@example.org@example.org", "U+000D"),
        ("ada@example.org\n", "U+000A"),
        ("a\ufffd@example.org", "U+FFFD"),
        ("a\u202e@example.org", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("ad\u200ba@example.org", "U+200B (ZERO WIDTH SPACE)"),
        ("a\u2028b@example.org", "U+2028 (LINE SEPARATOR)"),
        ("a\u00a0b@example.org", "U+00A0 (NO-BREAK SPACE)"),
        ("a\x00@example.org", "U+0000"),
        ("a\tb@example.org", "U+0009"),
        ('"a b"@example.org', "Quoting"),
        ("a@[127.0.0.1]", "bracketed"),
        ("a" * 400 + "@example.org", "longer than 320"),
        ("not an address", "@"),
    ],
)
def test_bad_addresses_get_a_clear_one_line_error(raw: str, why: str) -> None:
    with pytest.raises(AddressError) as caught:
        normalise_email(raw)
    message = str(caught.value)
    assert why.lower() in message.lower()
    assert message.isprintable() and len(message) < 400  # one safe line for stderr or a page


def test_wire_address_refuses_what_would_break_a_command_or_header() -> None:
    for bad in ["a b@example.org", "a@b@example.org", "a>@example.org", "a\r\n@x.org", "@x.org"]:
        with pytest.raises(AddressError):
            wire_address(bad)
    assert wire_address("x@bücher.example") == "x@xn--bcher-kva.example"  # a row from before
    assert needs_smtputf8("ädä@xn--bcher-kva.example")
    assert not needs_smtputf8("x@xn--bcher-kva.example")


addresses = st.one_of(
    st.text(max_size=60),
    st.builds(
        "{}@{}".format,
        st.text(min_size=1, max_size=20),
        st.one_of(st.sampled_from(DOMAINS), st.text(min_size=1, max_size=20)),
    ),
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(addresses)
@example("a\u0085@example.org")  # NEXT LINE: a C1 control some decoders take for a line end
@example("\ufeffa@example.org")
def test_normalise_never_accepts_an_unreadable_character(raw: str) -> None:
    try:
        stored = normalise_email(raw)
    except AddressError:
        return
    assert not any(unicodedata.category(c) in FORBIDDEN for c in stored)
    assert "\ufffd" not in stored and " " not in stored
    local, _, domain = stored.rpartition("@")
    assert domain.isascii() and domain == domain.lower()
    assert unicodedata.normalize("NFC", local) == local
    assert wire_address(stored) == stored
    assert normalise_email(stored) == stored  # idempotent
    assert normalise_email(display_email(stored)) == stored


@settings(max_examples=300)
@given(
    st.text(max_size=10),
    st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Co"]) | st.just("\ufffd"),
    st.text(max_size=10),
)
def test_any_control_or_format_character_is_refused(before: str, bad: str, after: str) -> None:
    with pytest.raises(AddressError):
        normalise_email(f"{before}{bad}{after}@example.org")


FAST_SAMPLES = [
    "Ana.Lopez@Example.ORG",
    "a@b",
    "a@localhost",
    "a@example",
    "a@-example.org",
    "a@example-.org",
    "a@ex_ample.org",
    "a@example.123",
    "a@123.123.123.123",
    "a..b@example.org",
    ".a@example.org",
    "a.@example.org",
    "x" * 64 + "@example.org",
    "x" * 65 + "@example.org",
    "a@" + "d" * 63 + ".org",
    "a@" + "d" * 64 + ".org",
    "a@" + ".".join(["d" * 60] * 5) + ".org",
    "o'neil+tag@example.org",
    "a@bücher.example",
    "a@XN--BCHER-KVA.example",
    "a@example.org.",
    "a@.example.org",
    "{weird}|~@example.org",
    "a@example.invalid",
    "a@example.local",
]


@pytest.mark.parametrize("raw", FAST_SAMPLES)
def test_the_fast_path_agrees_with_the_full_check(raw: str) -> None:
    """Imports validate plain addresses with a cached domain check: same answer, always."""
    from digest.subscribers.addresses import _checked, _fast

    fast = _fast(raw)
    try:
        full: str | None = _checked(raw)
    except DigestError:
        full = None
    assert fast is None or fast == full


@given(
    st.text(alphabet="abcXYZ09.-_+'@", min_size=1, max_size=30),
    st.sampled_from(["example.org", "EXAMPLE.org", "a.b", "x", "bücher.example", "-a.org"]),
)
def test_the_fast_path_agrees_on_generated_addresses(local: str, domain: str) -> None:
    from digest.subscribers.addresses import _checked, _fast

    raw = f"{local}@{domain}"
    fast = _fast(raw)
    try:
        full: str | None = _checked(raw)
    except DigestError:
        full = None
    assert fast is None or fast == full

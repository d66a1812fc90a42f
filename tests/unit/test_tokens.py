import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.config import DEV_SECRET, KNOWN_SECRETS, reset_settings
from digest.keys import InsecureKey, checked
from digest.tokens import (
    MARK_LENGTH,
    InvalidToken,
    Signer,
    _mark_text,
    check_mark,
    delivery_mark,
    make_token,
    read_token,
)
from tests.helpers import configured_keys, link_keys, read, token

PURPOSES = ("unsubscribe", "preferences", "confirm", "view")


def test_round_trip_and_purpose_separation() -> None:
    value = token("unsubscribe", 42)
    assert read("unsubscribe", value) == 42
    with pytest.raises(InvalidToken):
        read("view", value)


def test_forged_token_is_refused() -> None:
    value = token("unsubscribe", 42)
    forged = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    with pytest.raises(InvalidToken):
        read("unsubscribe", forged)
    with pytest.raises(InvalidToken):
        read("unsubscribe", token("unsubscribe", 42, "other"))


def test_signer_matches_make_token() -> None:
    keys = link_keys()
    signer = Signer(keys)
    for row_id in (1, 7, 123_456_789, 999_999_999, 10**9, 10**12, 2**40 + 3, 2**63 - 1):
        for purpose in PURPOSES:
            assert signer.token(purpose, row_id) == make_token(purpose, row_id, keys)  # type: ignore[arg-type]
            assert read_token(purpose, signer.token(purpose, row_id), keys) == row_id  # type: ignore[arg-type]


def test_a_signed_id_outside_the_stores_range_is_no_link() -> None:
    # Only a key holder can make these, but a link never names a row the store cannot hold.
    for row_id in (0, -1, 2**63, 2**64):
        with pytest.raises(InvalidToken):
            read("unsubscribe", token("unsubscribe", row_id))


def _rotate(monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    monkeypatch.delenv("DIGEST_SECRET_KEY", raising=False)
    monkeypatch.setenv("DIGEST_SECRET_KEYS", " ".join(keys))
    reset_settings()


def _read_configured(purpose: str, value: str) -> int:
    return read_token(purpose, value, configured_keys())  # type: ignore[arg-type]


def test_links_signed_before_a_rotation_still_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    _rotate(monkeypatch, "key-of-2024")
    old = {p: Signer(configured_keys()).token(p, 42) for p in PURPOSES}  # type: ignore[arg-type]
    _rotate(monkeypatch, "key-of-2024", "key-of-2025")
    new = Signer(configured_keys()).token("unsubscribe", 42)
    assert new != old["unsubscribe"]  # the newest key signs ...
    assert new == token("unsubscribe", 42, "key-of-2025")
    for purpose, value in old.items():  # ... and every listed key verifies
        assert _read_configured(purpose, value) == 42
    assert _read_configured("unsubscribe", new) == 42
    # DIGEST_SECRET_KEY is the newest key, after DIGEST_SECRET_KEYS' older ones.
    monkeypatch.setenv("DIGEST_SECRET_KEYS", "key-of-2024 key-of-2025")
    monkeypatch.setenv("DIGEST_SECRET_KEY", "key-of-2026")
    reset_settings()
    assert Signer(configured_keys()).token("view", 7) == token("view", 7, "key-of-2026")
    assert _read_configured("unsubscribe", old["unsubscribe"]) == 42
    # Once the old key is dropped, its links stop working.
    _rotate(monkeypatch, "key-of-2025")
    with pytest.raises(InvalidToken):
        _read_configured("unsubscribe", old["unsubscribe"])


def test_a_link_signed_with_an_unknown_key_does_not_verify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _rotate(monkeypatch, "key-of-2024", "key-of-2025")
    for stranger in ("key-of-2023", "key-of-2024 ", "KEY-OF-2025", "test-secret"):
        with pytest.raises(InvalidToken):
            _read_configured("unsubscribe", token("unsubscribe", 42, stranger))


@pytest.mark.parametrize("configured", [None, DEV_SECRET, "change-me-in-production"])
def test_a_token_forged_with_a_published_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, configured: str | None
) -> None:
    # The development key is in the source: anyone can sign "unsubscribe subscriber 42" with it.
    forged = make_token("unsubscribe", 42, checked((DEV_SECRET,), dev_mode=True))
    if configured is None:
        monkeypatch.delenv("DIGEST_SECRET_KEY")
    else:
        monkeypatch.setenv("DIGEST_SECRET_KEY", configured)
    reset_settings()
    # Outside development mode no published key is ever accepted to read or sign with,
    # whether configured or passed in.
    with pytest.raises(InsecureKey):
        _read_configured("unsubscribe", forged)
    with pytest.raises(InsecureKey):
        checked((DEV_SECRET,), dev_mode=False)


def test_a_published_key_among_older_keys_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _rotate(monkeypatch, "Change-Me-In-Production", "a-fresh-random-key")
    with pytest.raises(InsecureKey, match="published"):
        configured_keys()


def test_development_mode_signs_with_the_development_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGEST_SECRET_KEY")
    monkeypatch.setenv("DIGEST_DEV_MODE", "1")
    reset_settings()
    value = Signer(configured_keys()).token("unsubscribe", 42)
    assert value == make_token("unsubscribe", 42, checked((DEV_SECRET,), dev_mode=True))
    assert _read_configured("unsubscribe", value) == 42


def test_known_secrets_are_matched_whatever_their_case() -> None:
    from digest.keys import is_known

    assert all(is_known(k.upper()) and is_known(f" {k} ") for k in KNOWN_SECRETS)
    assert not is_known("test-secret")


@given(row_id=st.integers(min_value=1, max_value=2**63 - 1))
def test_fast_signer_agrees_with_the_library(row_id: int) -> None:
    keys = link_keys("property-key")
    signer = Signer(keys)
    for purpose in PURPOSES:
        value = signer.token(purpose, row_id)  # type: ignore[arg-type]
        assert value == make_token(purpose, row_id, keys)  # type: ignore[arg-type]
        assert read_token(purpose, value, keys) == row_id  # type: ignore[arg-type]
    many = signer.tokens(row_id, *PURPOSES)  # type: ignore[arg-type]
    assert many == [make_token(p, row_id, keys) for p in PURPOSES]  # type: ignore[arg-type]


@given(st.binary(min_size=32, max_size=32))
def test_mark_text_is_the_base32_prefix(digest: bytes) -> None:
    # The fast spelling must keep every mark already sent in mail (return paths, Message-IDs).
    assert _mark_text(digest) == base64.b32encode(digest).decode()[:MARK_LENGTH].lower()


def test_signer_marks_agree_with_delivery_mark_in_any_order() -> None:
    keys = link_keys()
    signer = Signer(keys)
    for delivery_id in (5, 5, 6, 5, 2**40, 6, 6):
        assert signer.mark(delivery_id) == delivery_mark(delivery_id, keys)
        assert check_mark(delivery_id, signer.mark(delivery_id), keys)

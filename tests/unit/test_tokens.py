import pytest

from digest.subscribers.tokens import InvalidToken, Signer, make_token, read_token


def test_round_trip_and_purpose_separation() -> None:
    token = make_token("unsubscribe", 42)
    assert read_token("unsubscribe", token) == 42
    with pytest.raises(InvalidToken):
        read_token("view", token)


def test_forged_token_is_refused() -> None:
    token = make_token("unsubscribe", 42)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(InvalidToken):
        read_token("unsubscribe", forged)
    with pytest.raises(InvalidToken):
        read_token("unsubscribe", make_token("unsubscribe", 42, secret="other"))


def test_signer_matches_make_token() -> None:
    signer = Signer()
    for row_id in (0, 7, 123_456_789, 999_999_999, 10**9, 10**12, 2**40 + 3):
        for purpose in ("unsubscribe", "preferences", "confirm", "view"):
            assert signer.token(purpose, row_id) == make_token(purpose, row_id)  # type: ignore[arg-type]
            assert read_token(purpose, signer.token(purpose, row_id)) == row_id  # type: ignore[arg-type]

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
    assert Signer().token("preferences", 7) == make_token("preferences", 7)

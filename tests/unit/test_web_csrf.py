"""The origin DIGEST_PUBLIC_URL names, written as a browser writes an Origin header."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.web.csrf import origin_of


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://digest.example.org", "https://digest.example.org"),
        ("https://digest.example.org/", "https://digest.example.org"),
        ("https://Digest.Example.org:443/news/?x=1", "https://digest.example.org"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:80/", "http://127.0.0.1"),
        ("https://digest.example.org:8443/", "https://digest.example.org:8443"),
        ("https://[::1]:8443/", "https://[::1]:8443"),
        (" https://digest.example.org ", "https://digest.example.org"),
        ("https://user:pw@digest.example.org/", "https://digest.example.org"),
        ("ftp://digest.example.org", None),
        ("digest.example.org", None),
        ("https://", None),
        ("https://digest.example.org:99999/", None),
        ("null", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


@given(st.text(max_size=200))
def test_any_header_value_is_an_origin_or_none(value: str) -> None:
    # Origin is a header a client writes: whatever it holds is a comparison, never an error.
    result = origin_of(value)
    assert result is None or (result.startswith(("http://", "https://")) and "/" not in result[8:])

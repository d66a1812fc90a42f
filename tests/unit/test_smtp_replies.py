"""The SMTP client's reply parser: replies come back whole and in order however the server's
bytes are cut into reads (a multi-line reply split inside a line, a code, a CRLF ...)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from digest.delivery.smtp_client import Reply, _ReplyReader

# Reply text as servers send it: printable ASCII, spaces and tabs (trailing ones are dropped).
texts = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.just("\t"))
replies = st.lists(
    st.tuples(st.integers(200, 599), st.lists(texts, min_size=1, max_size=4)),
    min_size=1,
    max_size=6,
)


def wire(code: int, lines: list[str], newline: bytes = b"\r\n") -> bytes:
    last = len(lines) - 1
    return b"".join(
        f"{code}{' ' if i == last else '-'}{line}".encode() + newline
        for i, line in enumerate(lines)
    )


def expected(code: int, lines: list[str]) -> Reply:
    return Reply(code, "\n".join(line.rstrip() for line in lines))


def read(chunks: list[bytes]) -> _ReplyReader:
    reader = _ReplyReader()
    for chunk in chunks:
        reader.data_received(chunk)
    return reader


@given(replies, st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_replies_read_back_whole_however_the_bytes_are_cut(
    sent: list[tuple[int, list[str]]], cuts: list[int]
) -> None:
    stream = b"".join(wire(code, lines) for code, lines in sent)
    bounds = [0, *sorted(min(c, len(stream)) for c in cuts), len(stream)]
    reader = read([stream[a:b] for a, b in itertools.pairwise(bounds)])
    assert list(reader.replies) == [expected(code, lines) for code, lines in sent]
    reader.replies.clear()
    assert reader.closed is None and not reader.unread  # nothing left half read


def test_a_multi_line_reply_cut_at_every_byte() -> None:
    sent = [(250, ["mx.example.org greets you", "PIPELINING", "SIZE 10240000", "8BITMIME"])]
    sent += [(354, ["go ahead"]), (250, ["2.0.0 Ok: queued as 4Xyz"])]
    stream = b"".join(wire(code, lines) for code, lines in sent)
    want = [expected(code, lines) for code, lines in sent]
    for cut in range(len(stream) + 1):
        for second in range(cut, len(stream) + 1, 7):
            reader = read([stream[:cut], stream[cut:second], stream[second:]])
            assert list(reader.replies) == want, (cut, second)
    assert list(read([bytes([b]) for b in stream]).replies) == want  # a byte per read


def test_bare_lf_and_a_code_without_text_are_read() -> None:
    reader = read([wire(250, ["a", "b"], newline=b"\n") + b"220\r\n"])
    assert list(reader.replies) == [Reply(250, "a\nb"), Reply(220, "")]


def test_what_has_come_unread_is_known() -> None:
    """STARTTLS refuses a session whose server said more than its reply in the clear."""
    reader = read([b"220 go ahead\r\n"])
    assert reader.unread
    reader.replies.clear()
    assert not reader.unread
    reader.data_received(b"250-half")
    assert reader.unread and not reader.replies
    reader = read([b"250-first line\r\n"])
    assert reader.unread and not reader.replies

"""Personalising over generated names and addresses: a valid message with exactly the template's
headers and a To field that reads back as given, or an error that fails that one delivery
(the transports turn it into a 'failed' result, never a stopped batch)."""

from __future__ import annotations

import re
import tempfile
from email.parser import Parser
from email.policy import SMTPUTF8

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from digest.delivery.maildir import MaildirTransport
from digest.delivery.message import MessageTemplate, build_template, unstuff
from digest.delivery.recipient import Recipient
from digest.models import Verdict
from digest.placeholders import Slots
from digest.subscribers.addresses import wire_address
from tests.flows import ISSUE_HEADERS
from tests.helpers import signer

P = Slots.new()  # one render's slots
TEMPLATE = MessageTemplate.from_bytes(
    build_template(
        signer=signer(),
        issue_id=7,
        subject="News",
        html_body=f"<p>Hello {P.NAME} ({P.EMAIL})</p>",
        text_body=f"Hello {P.NAME} ({P.EMAIL})",
        slots=P,
        list_slug="news",
        list_name="News",
        from_name="Digest",
        from_email="digest@example.org",
        public_url="https://digest.example.org",
    ).to_bytes(),
    signer(),
)
GOOD = Recipient(1, 1, "good@example.org", "Good")

names = st.text(max_size=80) | st.sampled_from(
    ["", 'Ann "the" O\'Neil, PhD', "Zoë\r\nBcc: victim@example.org", "=?utf-8?q?x?=", "李小龙"]
)
emails = st.sampled_from(
    [
        "bob@example.org",
        "x@xn--bcher-kva.example",
        "x@bücher.example",  # a row stored before domains were kept in IDNA
        "ädä@xn--bcher-kva.example",
        "bad address@example.org",
        "a\r\nRCPT TO:<v@example.org>@example.org",
        "no-at-sign",
        "a@-bad-.example",
    ]
) | st.builds("{}@example.org".format, st.text(min_size=1, max_size=20))


def _collapse(text: str) -> str:
    # Without whitespace: the stdlib parser puts a space between adjacent RFC 2047 words of
    # a phrase (which RFC 2047 6.2 says to drop); mail readers do not.
    return "".join(text.split())


def check_copy(recipient: Recipient, data: bytes) -> None:
    """What every copy that personalise returns must be."""
    head = unstuff(data).split(b"\r\n\r\n", 1)[0]
    assert b"\r" not in head.replace(b"\r\n", b"") and b"\n" not in head.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    # The bytes parser reads non-ASCII headers as surrogates: RFC 6532 text is parsed as str.
    msg = Parser(policy=SMTPUTF8).parsestr(unstuff(data).decode("utf-8"))
    names = [k for k in msg if not re.match(r"\s", k)]
    assert names == ISSUE_HEADERS, names  # nothing added, nothing lost
    (to,) = msg["To"].addresses
    assert to.addr_spec == wire_address(recipient.email)
    cleaned = re.sub(r"[\x00-\x1f\x7f]+", " ", recipient.name).strip()
    assert _collapse(to.display_name) == _collapse(cleaned)
    # Raw UTF-8 in the header only for an address that has it (RFC 6532), which only a relay
    # offering SMTPUTF8 is given (smtp_client); a name is always RFC 2047 words.
    assert head.isascii() == to.addr_spec.isascii()


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(names, emails)
@example("Zoë", "x@bücher.example")
@example("Bob", "x@bücher.example")  # main: formataddr raised on the Unicode domain
def test_personalise_gives_a_valid_copy_or_an_error(name: str, email: str) -> None:
    recipient = Recipient(5, 6, email, name)
    try:
        data = TEMPLATE.personalise(recipient)
    except Exception:
        return  # the transport fails this delivery (next test)
    check_copy(recipient, data)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(names, emails), min_size=1, max_size=6))
def test_a_maildir_batch_reports_every_recipient_and_sends_the_good_ones(
    people: list[tuple[str, str]],
) -> None:
    batch = [GOOD] + [Recipient(i + 2, i + 2, e, n) for i, (n, e) in enumerate(people)]
    with tempfile.TemporaryDirectory() as box:
        transport = MaildirTransport(f"{box}/outbox")
        chunks = transport.send("b@example.org", batch, TEMPLATE.personalise)
        results = [r for chunk in chunks for r in chunk]
        transport.close()
    assert sorted(r.delivery_id for r in results) == [r.delivery_id for r in batch]
    by_id = {r.delivery_id: r for r in results}
    assert by_id[GOOD.delivery_id].outcome == "sent"
    for result in results:
        assert result.outcome in ("sent", "failed")
        if result.outcome == "failed":
            assert result.verdict == Verdict.OURS and "could not build this copy" in result.detail

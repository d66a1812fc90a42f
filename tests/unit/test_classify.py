"""The policy reads the relay's answers at send time as it reads returned mail."""

from __future__ import annotations

import pytest

from digest.delivery.smtp_client import Reply, _classify
from digest.models import Verdict
from digest.subscribers.classify import classify

RELAY_REPLIES = [
    (550, "5.1.1 <ada@example.net>: Recipient address rejected: User unknown", Verdict.HARD),
    (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found", Verdict.HARD),
    (550, "No such user here", Verdict.HARD),
    (554, "delivery error: dd This user doesn't have a yahoo.com account", Verdict.HARD),
    (552, "5.2.2 Mailbox full", Verdict.SOFT),
    (550, "Requested action not taken: mailbox unavailable", Verdict.SOFT),
    (
        550,
        "5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy",
        Verdict.BLOCK,
    ),
    (550, "5.7.1 Service unavailable, Client host blocked using Spamhaus", Verdict.BLOCK),
    (554, "Message rejected as spam", Verdict.BLOCK),
    (550, "5.7.1 user unknown", Verdict.BLOCK),  # 5.7 says policy, whatever the words
    (554, "5.6.0 Message content rejected", Verdict.BLOCK),
    (501, "5.1.3 Bad recipient address syntax", Verdict.OURS),
    (500, "Syntax error, command unrecognised", Verdict.OURS),
    (550, "5.5.1 Unknown command", Verdict.OURS),
    (550, "5.1.8 Sender address rejected: Domain not found", Verdict.BLOCK),
]


@pytest.mark.parametrize(("code", "text", "verdict"), RELAY_REPLIES)
def test_relay_replies_at_send_time(code: int, text: str, verdict: Verdict) -> None:
    result = _classify("RCPT TO", Reply(code, text))
    assert (result.outcome, result.verdict) == ("failed", verdict)


def test_a_4xx_at_send_time_is_retried_not_judged() -> None:
    assert _classify("RCPT TO", Reply(452, "4.2.2 Mailbox full")).outcome == "retry"


def test_a_refused_sender_is_a_transport_error() -> None:
    result = _classify("MAIL FROM", Reply(550, "5.7.1 Sender blocked"))
    assert (result.outcome, result.transport_error) == ("retry", True)


def test_dsn_statuses() -> None:
    assert classify(status="4.4.7", text="retry timeout exceeded") == Verdict.SOFT
    assert classify(status="4.4.1", text="", failed=False) == Verdict.DELAY
    assert classify(status="5.2.1", text="The account is disabled") == Verdict.HARD
    assert classify(status="5.4.4", text="Host unknown") == Verdict.HARD
    assert classify(status="5.4.7", text="delivery time expired") == Verdict.SOFT
    assert classify(text="") == Verdict.SOFT

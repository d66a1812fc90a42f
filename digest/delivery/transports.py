"""What a transport is: it takes a claimed batch and reports one result per message.

Results stream back in chunks as they happen, so the caller can write the ledger right after
the server's 250 while the rest of the batch is still on the wire. A caller with more to send
passes `more`: the transport asks it for the next batch while the current one is still going
(SMTP: when half of it has been taken by the sessions), so its sessions never drain at a
batch boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from digest.delivery.recipient import Recipient
from digest.models import Verdict

# deferred: not tried (a rate limit ran out, the batch ran past its time); back to pending
# without using up an attempt.
Outcome = Literal["sent", "retry", "failed", "deferred"]
Render = Callable[[Recipient], bytes]  # DATA-ready bytes (dot-stuffed, CRLF) for a recipient
# The envelope sender: one for the batch, or one per recipient (each copy's VERP return path).
Sender = str | Callable[[Recipient], str]
# The next batch, asked for in the caller's thread (between the results it is handed); an
# empty one means there is no more.
More = Callable[[], Sequence[Recipient]]


def sender_for(sender: Sender, recipient: Recipient) -> str:
    return sender if isinstance(sender, str) else sender(recipient)


@dataclass(frozen=True, slots=True)
class SendResult:
    delivery_id: int
    outcome: Outcome
    detail: str = ""  # the server's reply or the error, for the ledger
    # The transport itself failed (connection refused, dropped, timed out), not this message.
    transport_error: bool = False
    retry_after: float = 0.0  # deferred: seconds until it may be tried again
    # failed: what the failure says about the address (digest.subscribers.classify), which
    # the ledger hands to the policy (digest.subscribers.feedback): hard suppresses at once,
    # soft after a few, a block never; OURS when the fault is ours or the relay's (a copy we
    # could not build, a relay without SMTPUTF8, a command it could not parse).
    verdict: Verdict = Verdict.HARD


def copy_failed(recipient: Recipient, exc: Exception) -> SendResult:
    """The result for a recipient whose copy could not be built or addressed (a name or an
    address the message cannot carry, a bug): that delivery fails with the reason, its batch
    goes on, and the address is not suppressed for our fault."""
    detail = f"could not build this copy: {type(exc).__name__}: {exc}"
    return SendResult(recipient.delivery_id, "failed", detail[:1000], verdict=Verdict.OURS)


class Transport(Protocol):
    def send(
        self,
        envelope_from: Sender,
        batch: Sequence[Recipient],
        render: Render,
        more: More | None = None,
    ) -> Iterator[list[SendResult]]:
        """Send the batch, and the batches `more` gives until it gives none; yield results in
        chunks as they arrive (an empty chunk now and then while waiting, so the caller can
        flush on time). Every recipient gets exactly one result."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...

"""What a failure says, as policy: hard, soft, block, ours or a delay (never "any 5xx").

The same rules read a relay's answer at send time and a returned message's status and
diagnostic (digest.subscribers.reports):
- hard: the address does not exist or has moved (5.1.x, user unknown, host unknown);
- soft: mailbox full, expired, network or temporary trouble, or a 5xx that says nothing more;
- block: a block, policy, authentication or spam rejection (5.7.x, 5.6.x and their texts),
  never the subscriber's fault;
- ours: a command the relay could not parse (500-504, 555, 5.5.x);
- delay: still being tried (4xx at send time is retried by the ledger instead).
A text that reads as a block wins over everything but an explicit "does not exist": a wrong
suppression loses a reader for good, a missed one costs a few more tries.
"""

from __future__ import annotations

import re

from digest.models import Verdict

ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
BASIC = re.compile(r"(?<![\d.])([245]\d\d)(?![\d.])")
# Replies about our command: its syntax, its order, an unknown parameter.
COMMAND_ERRORS = frozenset({500, 501, 502, 503, 504, 555})

_BLOCK = re.compile(
    r"spam|block|black ?list|deny ?list|listed|reputation|polic|dmarc|\bspf\b|dkim|"
    r"authenticat|\brbl\b|spamhaus|banned|not allowed|too many|rate limit|abuse|"
    r"refused by local policy|bulk|unsolicited|junk|prohibited|not authori[sz]ed",
    re.IGNORECASE,
)
_HARD = re.compile(
    r"user unknown|unknown user|no such (?:user|recipient|mailbox|address|domain)|"
    r"does ?n[o']t exist|not exist|no mailbox|mailbox (?:not found|does not)|"
    r"invalid (?:recipient|mailbox|address)|recipient (?:not found|unknown|invalid)|"
    r"unknown (?:recipient|address|mailbox)|address (?:not found|unknown)|"
    r"(?:account|mailbox|address) (?:has been |is )?(?:disabled|deactivated|closed|inactive)|"
    r"doesn't have an? [\w.-]+ account|host (?:unknown|not found)|domain not found|"
    r"no mx|nxdomain|recipientnotfound|has moved|no longer (?:valid|active|exists?)",
    re.IGNORECASE,
)
_SOFT = re.compile(
    r"mailbox (?:is )?full|quota|insufficient (?:storage|space)|over ?quota|"
    r"temporar|try again|timed? ?out|expired|connection refused|too large|message size",
    re.IGNORECASE,
)


def _enhanced(status: str, text: str) -> tuple[int, int, int] | None:
    for source in (status, text):
        found = ENHANCED.search(source or "")
        if found:
            return int(found.group(1)), int(found.group(2)), int(found.group(3))
    return None


def _basic(text: str) -> int | None:
    found = BASIC.search(text or "")
    return int(found.group(1)) if found else None


def classify(
    *, code: int | None = None, status: str = "", text: str = "", failed: bool = True
) -> Verdict:
    """The verdict on one failure: `code` is the SMTP reply code when known, `status` the
    DSN's Status field, `text` the reply or diagnostic; `failed` False for a delay notice."""
    if not failed:
        return Verdict.DELAY
    basic = code if code is not None else _basic(text)
    if basic in COMMAND_ERRORS:
        return Verdict.OURS
    enhanced = _enhanced(status, text)
    if enhanced is not None:
        klass, subject, detail = enhanced
        if klass == 4:
            return Verdict.SOFT  # a temporary failure reported as final: retries ran out
        if subject == 5:
            return Verdict.OURS
        if subject in (6, 7):
            return Verdict.BLOCK
        if subject == 1:
            # 5.1.7 and 5.1.8 are about our sender address, not the recipient.
            if detail in (7, 8):
                return Verdict.BLOCK
            return Verdict.HARD
        if _HARD.search(text):
            return Verdict.HARD  # 5.2.1 "account disabled", 5.4.4 "host unknown" ...
        if _BLOCK.search(text):
            return Verdict.BLOCK
        return Verdict.SOFT
    if _HARD.search(text) and not _BLOCK.search(text):
        return Verdict.HARD
    if _BLOCK.search(text):
        return Verdict.BLOCK
    return Verdict.SOFT  # a 4xx given up on, a full mailbox, or a 5xx that says nothing more


def status_of(*, code: int | None = None, status: str = "", text: str = "") -> str:
    """The most precise status code at hand, for the record (5.1.1, else 550, else "")."""
    enhanced = _enhanced(status, text)
    if enhanced is not None:
        return ".".join(str(n) for n in enhanced)
    basic = code if code is not None else _basic(text)
    return str(basic) if basic is not None else ""

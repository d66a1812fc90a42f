"""What a message that came back says, read without touching the store.

Delivery status notifications (RFC 3464: Postfix, Sendmail, Exchange, Gmail, SES ...) are read
field by field; the older free-text bounces (Exim, qmail, Yahoo ...) through flufl.bounce's
detectors, with the reply near each address classified. Complaints are ARF feedback reports
(RFC 5965) and Microsoft's JMRP reports. A `mailto:` unsubscribe is a message whose own Subject
carries the signed token our List-Unsubscribe header gave it. Each failure gets its verdict
from digest.subscribers.classify; which delivery a message answers is found by the marks it
carries (our VERP return path, our Message-ID), checked later against the keys and the store.

Everything here is hostile input: parsing never raises, addresses are kept only when they
look like addresses, and texts are cut short.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parseaddr

from flufl.bounce import all_failures

from digest.models import Verdict
from digest.subscribers.classify import BASIC, ENHANCED, classify, status_of
from digest.subscribers.suppression import address_key

# Our VERP return path: <local>+<delivery>-<mark>@<domain> (digest.tokens.delivery_mark).
VERP = re.compile(rb"[A-Za-z0-9._=-]{1,64}\+(\d{1,18})-([a-z2-7]{10})@", re.IGNORECASE)
# Our Message-ID: <d<delivery>.<mark>.i<issue>.<installation>@<domain>>.
MESSAGE_ID = re.compile(rb"<d(\d{1,18})\.([a-z2-7]{10})\.i(\d{1,10})\.([0-9a-f]{8,32})@", re.I)
UNSUBSCRIBE_SUBJECT = re.compile(r"unsubscribe-([A-Za-z0-9_-]{1,40}\.[A-Za-z0-9_-]{10,100})")
_ADDRESS = re.compile(
    r"^[^@\s<>()\[\]\\,;:\"|{}]{1,64}@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$"
)
_TEXT_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"'|{}]{1,64}@[A-Za-z0-9.-]{3,255}")
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[ -]?(?:reply|response)|"
    r"auto:|abwesenheit|absence|r[ée]ponse automatique|vacation|away from)",
    re.IGNORECASE,
)
_BOUNCE_SENDER = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status|fail|has failed)|returned mail|failure notice|"
    r"mail delivery|could not be delivered|non-?delivery|returning message",
    re.IGNORECASE,
)
_JMRP_SENDERS = re.compile(r"@(?:hotmail|outlook|live|msn|microsoft)\.com$", re.IGNORECASE)
# flufl.bounce logs a traceback for every detector that chokes on a malformed message (and
# goes on with the next): for hostile input that is noise, not news.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
DETAIL_MAX = 500
SCAN_MAX = 1_000_000  # bytes of a message looked at for marks


@dataclass(frozen=True, slots=True)
class Failure:
    email: str
    verdict: Verdict
    status: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Mark:
    delivery_id: int
    mark: str
    issue_id: int | None = None  # from a Message-ID
    installation: str | None = None  # from a Message-ID


@dataclass
class Report:
    """`verdict`: what the message is as a whole (for a bounce, its first failure's verdict);
    `failures`: per recipient; `reported`: the addresses a complaint names."""

    verdict: Verdict = Verdict.OTHER
    failures: list[Failure] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    unsubscribe_token: str | None = None
    detail: str = ""


def plausible_address(value: str) -> str | None:
    """The address in lower case, or None for what is not one ("undisclosed recipients",
    a pipe command, a JSON fragment ...)."""
    _, addr = parseaddr(value.strip().strip("<>"))
    addr = address_key(addr or "")
    if len(addr) > 320 or not _ADDRESS.match(addr):
        return None
    return addr


def _text(value: object, limit: int = DETAIL_MAX) -> str:
    return " ".join(str(value or "").split())[:limit]


def find_marks(raw: bytes, envelope_recipients: list[str] | tuple[str, ...] = ()) -> list[Mark]:
    """Our marks in the envelope recipients first, then anywhere in the message (the return
    path and Message-ID of the copy a report quotes)."""
    found: list[Mark] = []
    for rcpt in envelope_recipients:
        for m in VERP.finditer(rcpt.encode("utf-8", "replace")):
            found.append(Mark(int(m.group(1)), m.group(2).decode().lower()))
    head = raw[:SCAN_MAX]
    for m in VERP.finditer(head):
        found.append(Mark(int(m.group(1)), m.group(2).decode().lower()))
    for m in MESSAGE_ID.finditer(head):
        found.append(
            Mark(
                int(m.group(1)),
                m.group(2).decode().lower(),
                int(m.group(3)),
                m.group(4).decode().lower(),
            )
        )
    unique: dict[tuple[int, str, int | None, str | None], Mark] = {}
    for mark in found:
        unique.setdefault((mark.delivery_id, mark.mark, mark.issue_id, mark.installation), mark)
    return list(unique.values())


def _report_type(msg: Message) -> str:
    if msg.get_content_type() != "multipart/report":
        return ""
    return str(msg.get_param("report-type") or "").lower()


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):
        text = payload.replace("\r\n", "\n")
        return [email.message_from_string(b.strip() + "\n") for b in re.split(r"\n\s*\n", text)]
    return []


def _dsn_failures(msg: Message) -> list[Failure]:
    failures: list[Failure] = []
    for part in msg.walk():
        if part.get_content_type() not in (
            "message/delivery-status",
            "message/global-delivery-status",
        ):
            continue
        for block in _field_blocks(part):
            recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            if not recipient:
                continue
            address = plausible_address(recipient.split(";", 1)[-1])
            if address is None:
                continue
            action = str(block.get("Action") or "").strip().lower()
            if action not in ("failed", "delayed"):
                continue  # delivered, relayed, expanded: nothing went wrong
            status = _text(block.get("Status"), 16)
            diagnostic = _text(block.get("Diagnostic-Code"))
            text = diagnostic.split(";", 1)[-1].strip() if ";" in diagnostic else diagnostic
            verdict = classify(status=status, text=text, failed=action == "failed")
            failures.append(Failure(address, verdict, status_of(status=status, text=text), text))
    return failures


def _feedback(msg: Message) -> tuple[str, list[str]]:
    """ARF: the feedback type and the original recipients it names."""
    kind = ""
    reported: list[str] = []
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            for block in _field_blocks(part):
                kind = kind or str(block.get("Feedback-Type") or "").strip().lower()
                for value in block.get_all("Original-Rcpt-To") or []:
                    if (address := plausible_address(str(value))) is not None:
                        reported.append(address)
    return kind, reported


def _attached_headers(msg: Message) -> list[Message]:
    found: list[Message] = []
    for part in msg.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list):
                found += [p for p in payload if isinstance(p, Message)]
            elif isinstance(payload, str):
                found.append(email.message_from_string(payload))
    return found


def _jmrp(msg: Message) -> list[str] | None:
    """A Microsoft JMRP complaint: the addresses it names (None: not one). JMRP sends the
    complained-about message as an attachment, with the recipient (when not redacted) in
    X-HmXmrOriginalRecipient."""
    sender = plausible_address(str(msg.get("From") or "")) or ""
    attached = _attached_headers(msg)
    names = [str(h.get("X-HmXmrOriginalRecipient") or "") for h in attached]
    if not any(names) and not (
        _JMRP_SENDERS.search(sender) and "abuse report" in _body_text(msg).lower()
    ):
        return None
    return [a for a in (plausible_address(n) for n in names) if a is not None]


def _body_text(msg: Message) -> str:
    """The message's own text parts (not those of a message it quotes), decoded."""
    texts: list[str] = []

    def walk(part: Message) -> None:
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            return
        if part.is_multipart():
            for sub in part.get_payload() or []:
                if isinstance(sub, Message):
                    walk(sub)
            return
        if part.get_content_maintype() == "text":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    texts.append(data.decode(charset, "replace"))
                except LookupError:
                    texts.append(data.decode("utf-8", "replace"))

    walk(msg)
    return "\n".join(texts)[:200_000]


def _looks_like_bounce(msg: Message) -> bool:
    sender = plausible_address(str(msg.get("From") or "")) or ""
    return bool(
        msg.get("X-Failed-Recipients")
        or _BOUNCE_SENDER.match(sender)
        or _BOUNCE_SUBJECT.search(str(msg.get("Subject") or ""))
    )


def _is_auto_reply(msg: Message) -> bool:
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Autoresponse"):
        return True
    if str(msg.get("Precedence") or "").strip().lower() == "auto_reply":
        return True
    if _AUTO_SUBJECT.search(str(msg.get("Subject") or "")):
        return True
    auto = str(msg.get("Auto-Submitted") or "").strip().lower()
    return auto.startswith("auto-replied") and not _looks_like_bounce(msg)


def _near(text: str, address: str) -> str:
    """The reply a free-text bounce gives for an address: the lines after it, up to the
    first that holds an SMTP code (the reply's own line and the next)."""
    lower = text.lower()
    start = lower.find(address)
    while start != -1:
        window = text[start : start + 600]
        code = ENHANCED.search(window) or BASIC.search(window)
        if code:
            line_start = window.rfind("\n", 0, code.start()) + 1
            line_end = window.find("\n", code.end())
            line_end = len(window) if line_end == -1 else window.find("\n", line_end + 1)
            return _text(window[line_start : line_end if line_end != -1 else None])
        start = lower.find(address, start + 1)
    return ""


def _text_failures(msg: Message) -> list[Failure]:
    """Free-text bounces: flufl.bounce finds the addresses, the text near each says why."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector that chokes on a malformed message
        temporary = permanent = frozenset()
    body = _body_text(msg)
    found: dict[str, bool] = {}
    for raw_address, failed in [(a, False) for a in temporary] + [(a, True) for a in permanent]:
        value = (
            raw_address.decode("utf-8", "replace")
            if isinstance(raw_address, bytes)
            else str(raw_address)
        )
        if (address := plausible_address(value)) is not None:
            found[address] = found.get(address, False) or failed
    if not found and _looks_like_bounce(msg):
        # No detector knew it: an address followed closely by an SMTP reply.
        for candidate in _TEXT_ADDRESS.findall(body):
            address = plausible_address(candidate)
            if address is not None and _near(body, address):
                found.setdefault(address, True)
    failures = []
    for address, failed in found.items():
        reply = _near(body, address)
        verdict = classify(text=reply, failed=failed)
        failures.append(Failure(address, verdict, status_of(text=reply), reply))
    return failures


def read_report(raw: bytes, envelope_recipients: list[str] | tuple[str, ...] = ()) -> Report:
    """What a message that came back says; never raises."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:
        return Report(detail="unreadable")
    report = Report(marks=find_marks(raw, envelope_recipients))
    report.detail = _text(msg.get("Subject"), 200)
    try:
        kind = _report_type(msg)
        if kind == "feedback-report":
            feedback, report.reported = _feedback(msg)
            report.verdict = {
                "abuse": Verdict.COMPLAINT,
                "opt-out": Verdict.OPT_OUT,
                "auth-failure": Verdict.AUTH_FAILURE,
            }.get(feedback, Verdict.OTHER)
            report.detail = f"feedback report: {_text(feedback, 40)}"
            return report
        if kind == "delivery-status":
            report.failures = _dsn_failures(msg)
        if not report.failures:
            jmrp = _jmrp(msg)
            if jmrp is not None:
                report.verdict, report.reported = Verdict.COMPLAINT, jmrp
                report.detail = "JMRP complaint"
                return report
            if not _looks_like_bounce(msg):
                token = UNSUBSCRIBE_SUBJECT.search(str(msg.get("Subject") or ""))
                if token:
                    report.verdict, report.unsubscribe_token = Verdict.UNSUBSCRIBE, token.group(1)
                    return report
                if _is_auto_reply(msg):
                    report.verdict = Verdict.AUTO_REPLY
                    return report
            report.failures = _text_failures(msg)
    except Exception as exc:  # a malformed message: recorded, never acted on
        report.failures = []
        report.detail = _text(f"unreadable: {type(exc).__name__}: {exc}", 200)
        return report
    if report.failures:
        report.verdict = report.failures[0].verdict
    return report
